#!/usr/bin/env bash
# A throwaway PostgreSQL server for benchmarks (Debian's packages), on 127.0.0.1 only.
#
#   scripts/postgres.sh ensure                      install Debian's postgresql if no server is found
#   scripts/postgres.sh start DIR PORT [-c k=v ...] initdb DIR/data if empty, start on 127.0.0.1:PORT
#   scripts/postgres.sh stop DIR                    stop the server of DIR (fast shutdown)
#   scripts/postgres.sh status DIR                  say whether the server of DIR runs, and where
#
# Layout of DIR: data/ (the cluster), postgres.log, and the unix socket (.s.PGSQL.PORT) in DIR
# itself. Authentication is `trust`: the server only listens on 127.0.0.1 and on a socket inside
# DIR. Every command is idempotent: `start` on a running server of DIR only checks its port,
# `stop` on a stopped one does nothing. As root, initdb and the server run as the `postgres`
# system user (initdb refuses root), and DIR is chowned to it.
set -euo pipefail

log() { echo "postgres.sh: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# The directory holding postgres, initdb and pg_ctl: PATH first, then Debian's newest version.
find_bindir() {
    local dir
    if command -v postgres >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1 &&
        command -v pg_ctl >/dev/null 2>&1; then
        dir=$(dirname "$(readlink -f "$(command -v postgres)")")
        if [[ -x $dir/initdb && -x $dir/pg_ctl ]]; then
            echo "$dir"
            return 0
        fi
    fi
    local dirs
    mapfile -t dirs < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r)
    for dir in "${dirs[@]}"; do
        if [[ -x $dir/postgres && -x $dir/initdb && -x $dir/pg_ctl ]]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

ensure() {
    local bindir
    if bindir=$(find_bindir); then
        log "found PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') in $bindir"
        echo "$bindir"
        return 0
    fi
    [[ $(id -u) -eq 0 ]] || die "no PostgreSQL server found; install Debian's postgresql package"
    log "no PostgreSQL server found: installing Debian's postgresql package"
    # Do not let the package create and start its own cluster (/var/lib/postgresql, port 5432):
    # the benchmarks only need the binaries. An existing createcluster.conf is left alone.
    if [[ ! -e /etc/postgresql-common/createcluster.conf ]]; then
        mkdir -p /etc/postgresql-common
        echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
        log "wrote /etc/postgresql-common/createcluster.conf (create_main_cluster = false)"
    fi
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -o Dpkg::Options::=--force-confold \
        postgresql >&2
    bindir=$(find_bindir) || die "postgresql was installed but no server binaries were found"
    log "installed PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') in $bindir"
    echo "$bindir"
}

# Run a command as the owner of the cluster: the postgres system user when we are root.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

running_port() { # the port of the server running on DIR/data, or nothing
    local data=$1
    [[ -f $data/postmaster.pid ]] || return 0
    local pid
    pid=$(head -1 "$data/postmaster.pid")
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        sed -n 4p "$data/postmaster.pid"
    fi
}

start() {
    [[ $# -ge 2 ]] || die "usage: $0 start DIR PORT [-c name=value ...]"
    local dir=$1 port=$2
    shift 2
    [[ $port =~ ^[0-9]+$ ]] || die "PORT must be a number, not '$port'"
    local bindir
    bindir=$(ensure)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd -P)
    local data=$dir/data
    # A unix socket path is limited to 107 bytes.
    ((${#dir} + 20 < 108)) || die "DIR is too long for a unix socket path: $dir"
    if [[ $(id -u) -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || die "no postgres system user (is Debian's package installed?)"
        chown postgres:postgres "$dir"
        as_owner test -w "$dir" -a -x "$dir" ||
            die "the postgres user cannot write $dir (a parent directory is not searchable?)"
    fi

    local current
    current=$(running_port "$data")
    if [[ -n $current ]]; then
        [[ $current == "$port" ]] ||
            die "a server already runs on $data with port $current, not $port"
        log "already running: $data on 127.0.0.1:$port (options not changed)"
        return 0
    fi

    if [[ ! -f $data/PG_VERSION ]]; then
        if [[ -d $data && -n $(ls -A "$data") ]]; then
            die "$data is not empty and holds no cluster; remove it first"
        fi
        mkdir -p "$data"
        [[ $(id -u) -ne 0 ]] || chown postgres:postgres "$data"
        log "initdb $data (user postgres, trust auth, UTF8, C locale)"
        as_owner "$bindir/initdb" -D "$data" -U postgres -A trust -E UTF8 --no-locale \
            --no-instructions >"$dir/initdb.log" 2>&1 ||
            {
                cat "$dir/initdb.log" >&2
                die "initdb failed"
            }
    else
        log "reusing the cluster in $data"
    fi

    log "starting $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port" \
        "(socket in $dir, log $dir/postgres.log${*:+, options: $*})"
    # Options go through pg_ctl -o as one string: quote nothing that has spaces.
    local opts="-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir $*"
    if ! as_owner "$bindir/pg_ctl" -D "$data" -l "$dir/postgres.log" -o "$opts" -w -t 120 \
        start >/dev/null; then
        tail -20 "$dir/postgres.log" >&2 || true
        die "the server did not start"
    fi
    log "running: pid $(head -1 "$data/postmaster.pid"), 127.0.0.1:$port"
}

stop() {
    [[ $# -eq 1 ]] || die "usage: $0 stop DIR"
    local dir=$1
    local data=$dir/data
    if [[ -z $(running_port "$data") ]]; then
        log "not running: $data"
        return 0
    fi
    local bindir
    bindir=$(find_bindir) || die "no pg_ctl found"
    log "stopping $data (pid $(head -1 "$data/postmaster.pid"))"
    as_owner "$bindir/pg_ctl" -D "$(cd "$data" && pwd -P)" -m fast -w -t 120 stop >/dev/null
    log "stopped"
}

status() {
    [[ $# -eq 1 ]] || die "usage: $0 status DIR"
    local port
    port=$(running_port "$1/data")
    if [[ -n $port ]]; then
        log "running: $1/data on 127.0.0.1:$port (pid $(head -1 "$1/data/postmaster.pid"))"
    else
        log "not running: $1/data"
        return 3
    fi
}

cmd=${1:-}
shift || true
case $cmd in
ensure) ensure >/dev/null ;;
start) start "$@" ;;
stop) stop "$@" ;;
status) status "$@" ;;
*) die "usage: $0 ensure | start DIR PORT [-c name=value ...] | stop DIR | status DIR" ;;
esac

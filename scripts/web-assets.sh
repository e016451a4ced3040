#!/usr/bin/env bash
# The dashboard's vendored front-end library: Chart.js's browser (UMD) build, from npm.
#
#   scripts/web-assets.sh ensure   npm ci in services/gateway/web if needed, then copy
#                                  chart.umd.js into crm_gateway/web/static (the default)
#   scripts/web-assets.sh check    fail unless the copied file is there and is the locked version
#
# There is no build step: services/gateway/web/package.json and its package-lock.json pin the
# exact version (and its integrity hash); the copy in the package is generated, not committed
# (.gitignore), and the gateway serves it at /dashboard/static/chart.umd.js. `ensure` is
# idempotent: when the copy is already the locked version it only checks, in well under a
# second, without npm or the network.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
WEB=$ROOT/services/gateway/web
DEST=$ROOT/services/gateway/src/crm_gateway/web/static
FILES=(chart.umd.js) # from node_modules/chart.js/dist/

log() { echo "web-assets.sh: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# The version of chart.js that package-lock.json pins.
locked_version() {
    python3 -c 'import json, sys
lock = json.load(open(sys.argv[1]))
print(lock["packages"]["node_modules/chart.js"]["version"])' "$WEB/package-lock.json"
}

# The version a Chart.js build says it is, from its banner (" * Chart.js v4.6.1"), or nothing.
banner_version() {
    [[ -f $1 ]] || return 0
    head -c 400 "$1" | sed -n 's/^ \* Chart\.js v\([0-9][0-9A-Za-z.+-]*\)$/\1/p' | head -1
}

# True when every copied file is the locked version (and, when node_modules is there with
# that version, byte for byte the one npm installed).
current() {
    local version=$1 file installed
    installed=$(installed_version)
    for file in "${FILES[@]}"; do
        [[ $(banner_version "$DEST/$file") == "$version" ]] || return 1
        if [[ $installed == "$version" ]]; then
            cmp -s "$WEB/node_modules/chart.js/dist/$file" "$DEST/$file" || return 1
        fi
    done
}

installed_version() {
    local manifest=$WEB/node_modules/chart.js/package.json
    [[ -f $manifest ]] || return 0
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' "$manifest"
}

ensure() {
    local version
    version=$(locked_version) || die "cannot read the chart.js version from $WEB/package-lock.json"
    if current "$version"; then
        log "up to date: chart.js $version in ${DEST#"$ROOT"/}"
        return 0
    fi
    command -v npm >/dev/null 2>&1 || die "npm is needed to install chart.js $version (Node.js)"
    # One install at a time (make setup and a test session may both ask).
    mkdir -p "$ROOT/.crm"
    exec 9>"$ROOT/.crm/web-assets.lock"
    flock 9
    if current "$version"; then
        log "up to date: chart.js $version in ${DEST#"$ROOT"/}"
        return 0
    fi
    if [[ $(installed_version) != "$version" ]]; then
        log "npm ci in ${WEB#"$ROOT"/} (chart.js $version, as package-lock.json pins it)"
        (cd "$WEB" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) >&2
    fi
    [[ $(installed_version) == "$version" ]] ||
        die "npm installed chart.js $(installed_version), not the locked $version"
    mkdir -p "$DEST"
    local file tmp
    for file in "${FILES[@]}"; do
        tmp=$(mktemp "$DEST/.$file.XXXXXX")
        cp "$WEB/node_modules/chart.js/dist/$file" "$tmp"
        chmod 0644 "$tmp"
        mv -f "$tmp" "$DEST/$file"
    done
    log "copied chart.js $version (${FILES[*]}) into ${DEST#"$ROOT"/}"
}

check() {
    local version
    version=$(locked_version) || die "cannot read the chart.js version from $WEB/package-lock.json"
    current "$version" ||
        die "the dashboard's chart.js is missing or not the locked $version: run $0 ensure"
    log "ok: chart.js $version"
}

cmd=${1:-ensure}
case $cmd in
ensure) ensure ;;
check) check ;;
*) die "usage: $0 [ensure | check]" ;;
esac

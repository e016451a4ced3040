#!/usr/bin/env bash
# Debian's Chromium for the browser tests (the dashboard's Playwright test drives it).
#
#   scripts/chromium.sh ensure    install Debian's chromium if it is missing; print its path
#   scripts/chromium.sh path      print the path of the browser, or fail if there is none
#   scripts/chromium.sh version   print the browser's version
#
# Test tools' own browser downloads do not work on the project's machines (only the package
# registries are reachable), so tests launch Debian's build: Playwright with
# executable_path=<the printed path>. CHROMIUM=/path/to/chromium chooses another binary.
# `ensure` is idempotent: when the browser is there it only checks it, in a few milliseconds.
# It installs with apt-get (as root, or through sudo when not root).
set -euo pipefail

log() { echo "chromium.sh: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# The browser: $CHROMIUM, else Debian's /usr/bin/chromium, else one on PATH.
find_browser() {
    local candidate
    for candidate in "${CHROMIUM:-}" /usr/bin/chromium "$(command -v chromium 2>/dev/null || true)"; do
        if [[ -n $candidate && -x $candidate ]]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# Run a command as root: directly when we are root, else through sudo (never prompting).
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "not root and no sudo: install Debian's chromium package by hand"
    fi
}

ensure() {
    local browser
    if browser=$(find_browser); then
        echo "$browser"
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || die "no chromium found and no apt-get to install it"
    log "no chromium found: installing Debian's chromium package"
    # Several test processes may ask at once: one installs, the others wait for the lock.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y \
        --no-install-recommends chromium >&2
    browser=$(find_browser) || die "the chromium package was installed but no browser was found"
    log "installed $("$browser" --version 2>/dev/null || echo chromium) at $browser"
    echo "$browser"
}

cmd=${1:-}
shift || true
case $cmd in
ensure) ensure ;;
path) find_browser || die "no chromium found: run $0 ensure" ;;
version)
    browser=$(find_browser) || die "no chromium found: run $0 ensure"
    "$browser" --version
    ;;
*) die "usage: $0 ensure | path | version" ;;
esac

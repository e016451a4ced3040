#!/usr/bin/env bash
# Build the Rust SecantusDB server (`secantusd-rs`, crate `secantus-mdb`) into a
# per-machine cache ($SECANTUS_RS_ROOT, default ~/.cache/crm/secantus-rs/<version>),
# shared by every clone, and link it as $CRM_HOME/tools/bin/secantusd-rs, where the
# launcher looks for it (docs/benchmarks.md: why the Rust server is the default).
#
# Idempotent: only links when the binary is already built (set
# SECANTUS_RS_FORCE=1 to rebuild). Installs the Debian build packages only when
# they are missing. The crate compiles WiredTiger from bundled source (CMake +
# a C/C++ compiler), so the first build takes several minutes on 2 cores.
#
# SecantusDB is GPL-2.0: it is only ever run as a separate server process,
# never linked into or imported by project code.
#
# Env:
#   CRM_HOME              default <repo>/.crm
#   SECANTUS_RS_ROOT      where cargo installs it (default: the machine cache above)
#   SECANTUS_RS_VERSION   default: the pinned version below
#   SECANTUS_RS_JOBS      cargo -j (default: nproc)
#   SECANTUS_RS_FORCE=1   rebuild even if the binary exists
set -euo pipefail

SECANTUS_RS_VERSION="${SECANTUS_RS_VERSION:-0.5.3-beta.196}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CRM_HOME="${CRM_HOME:-$repo_root/.crm}"
root="${SECANTUS_RS_ROOT:-${XDG_CACHE_HOME:-${HOME:-$CRM_HOME}/.cache}/crm/secantus-rs/$SECANTUS_RS_VERSION}"
bin="$root/bin/secantusd-rs"
link="$CRM_HOME/tools/bin/secantusd-rs"

link_binary() {
    mkdir -p "$(dirname "$link")"
    ln -sfn "$bin" "$link"
}

if [[ -x "$bin" && "${SECANTUS_RS_FORCE:-0}" != "1" ]]; then
    link_binary
    exit 0
fi

# --- Debian build dependencies (only the missing ones) ----------------------
# cmake + a C/C++ toolchain build the bundled WiredTiger; pkg-config/zlib are
# used by libz-sys. ninja-build is optional for cmake but speeds it up.
deb_packages=(build-essential cmake ninja-build pkg-config zlib1g-dev)
missing=()
for p in "${deb_packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    echo "installing Debian packages: ${missing[*]}"
    sudo_cmd=()
    if [[ "$(id -u)" != "0" ]]; then sudo_cmd=(sudo); fi
    "${sudo_cmd[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi

command -v cargo >/dev/null || { echo "cargo not found (install a Rust toolchain)" >&2; exit 1; }

# --- build -------------------------------------------------------------------
# The crate declares rust-version 1.98; it builds with older stable compilers
# (checked with 1.95), hence --ignore-rust-version.
mkdir -p "$root"
jobs="${SECANTUS_RS_JOBS:-$(nproc)}"
echo "building secantus-mdb $SECANTUS_RS_VERSION into $root (jobs=$jobs)"
force_flag=()
if [[ "${SECANTUS_RS_FORCE:-0}" == "1" ]]; then force_flag=(--force); fi
start=$(date +%s)
nice -n 10 cargo install secantus-mdb \
    --version "$SECANTUS_RS_VERSION" \
    --root "$root" \
    --locked \
    --ignore-rust-version \
    --jobs "$jobs" \
    "${force_flag[@]}"
echo "built $bin in $(( $(date +%s) - start ))s"
"$bin" --help >/dev/null
link_binary

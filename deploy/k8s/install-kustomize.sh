#!/usr/bin/env bash
# Installs the pinned kustomize into $CRM_HOME/tools/bin from the Go module proxy, by module name.
# Idempotent: when the pinned version is already there it only checks and prints the path.
# Needs the Go toolchain; a cold install (empty module and build caches) takes about 70 s on 2 cores.
set -euo pipefail

KUSTOMIZE_VERSION="v5.8.1"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CRM_HOME="${CRM_HOME:-$repo_root/.crm}"
bin_dir="$CRM_HOME/tools/bin"
target="$bin_dir/kustomize"

if [[ -x "$target" ]] && [[ "$("$target" version 2>/dev/null)" == "$KUSTOMIZE_VERSION" ]]; then
  echo "$target"
  exit 0
fi

go_bin="$(command -v go || true)"
if [[ -z "$go_bin" && -x /usr/local/go/bin/go ]]; then
  go_bin=/usr/local/go/bin/go
fi
if [[ -z "$go_bin" ]]; then
  echo "install-kustomize: the Go toolchain (go) is not on PATH; it builds kustomize from its module" >&2
  exit 1
fi

mkdir -p "$bin_dir"
# Build into a private folder, then move into place, so a half-written binary is never picked up.
staging="$(mktemp -d "$bin_dir/.kustomize-install.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
echo "install-kustomize: go install sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" >&2
GOBIN="$staging" GOFLAGS=-mod=mod "$go_bin" install \
  "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" >&2
mv -f "$staging/kustomize" "$target"

installed="$("$target" version)"
if [[ "$installed" != "$KUSTOMIZE_VERSION" ]]; then
  echo "install-kustomize: expected $KUSTOMIZE_VERSION, the binary says $installed" >&2
  exit 1
fi
echo "$target"

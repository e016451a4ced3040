#!/usr/bin/env bash
# The contracts toolchain: Python code generation from proto/, drift check, buf lint, buf breaking
# and buf format. Called by the Makefile; runnable from any directory.
#
#   scripts/proto.sh generate        regenerate libs/contracts/src from proto/
#   scripts/proto.sh check           fail if libs/contracts/src is not what `generate` would write
#   scripts/proto.sh lint [ARGS]     buf lint (STANDARD, incl. PROTOVALIDATE) on proto/
#   scripts/proto.sh breaking [ARGS] buf breaking (FILE) of proto/ against git branch main
#   scripts/proto.sh format          buf format -w proto/
#   scripts/proto.sh format-check    fail if proto/ is not buf-formatted
#
# Why there is no plain `buf lint` / `buf build`: proto/ imports buf/validate/validate.proto
# (protovalidate), which buf would fetch from the schema registry, and that is unreachable
# here. Its descriptor ships, compiled in, with the installed protovalidate Python package.
# This script serialises it into a FileDescriptorSet, hands that to protoc with
# --descriptor_set_in, and runs buf on the binary image protoc writes. See docs/contracts.md.
#
# Environment:
#   UV_PROJECT_ENVIRONMENT   the virtualenv holding the tools (default: <repo>/.venv)
#   PROTO_BREAKING_AGAINST   git ref to check breaking changes against (default: main)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROTO_DIR="$ROOT/proto"
OUT_DIR="$ROOT/libs/contracts/src"
VENV="${UV_PROJECT_ENVIRONMENT:-$ROOT/.venv}"
PYTHON="$VENV/bin/python"
BUF="$VENV/bin/buf"
BREAKING_AGAINST="${PROTO_BREAKING_AGAINST:-main}"
# Top-level Python packages under OUT_DIR that this script owns (and replaces on generate).
GENERATED_PACKAGES=(crm buf)
# The one file taken from the protovalidate package rather than from proto/.
PROTOVALIDATE_FILE="buf/validate/validate.proto"

info() { echo "proto.sh: $*" >&2; }
die() {
  echo "proto.sh: error: $*" >&2
  exit 1
}

usage() {
  sed -n '2,/^set -euo pipefail$/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit "${1:-2}"
}

TMP=""
cleanup() { if [[ -n "$TMP" ]]; then rm -rf "$TMP"; fi; }
trap cleanup EXIT
make_tmp() { TMP="$(mktemp -d "${TMPDIR:-/tmp}/crm-proto.XXXXXX")"; }

require_tools() {
  local tool
  for tool in "$PYTHON" "$BUF" "$VENV/bin/protoc-gen-mypy" "$VENV/bin/protoc-gen-mypy_grpc"; do
    [[ -x "$tool" ]] || die "missing $tool; install the dev tools first: make setup" \
      "(or .crm/tools/bin/uv sync --frozen --all-packages)"
  done
  "$PYTHON" -c 'import grpc_tools.protoc, protovalidate' 2>/dev/null ||
    die "grpcio-tools or protovalidate is not installed in $VENV; run make setup"
}

# The .proto files of the module (paths relative to proto/), sorted for stable output.
proto_files() {
  local dir="$1"
  (cd "$dir" && find crm -name '*.proto' -type f -print | LC_ALL=C sort)
}

# Writes a FileDescriptorSet holding buf/validate/validate.proto, taken from the installed
# protovalidate package (whose rule engine reads exactly these extensions). Its imports
# (google/protobuf/*.proto) come from grpcio-tools' bundled include directory.
write_protovalidate_descriptor() {
  local out="$1"
  "$PYTHON" - "$out" "$PROTOVALIDATE_FILE" <<'PY'
import sys

from google.protobuf import descriptor_pb2
from protovalidate import ViolationPb

out, expected_name = sys.argv[1], sys.argv[2]
file_proto = descriptor_pb2.FileDescriptorProto.FromString(
    ViolationPb.desc().file.proto.to_binary()
)
if file_proto.name != expected_name:
    sys.exit(f"protovalidate ships {file_proto.name!r}, expected {expected_name!r}")
descriptor_set = descriptor_pb2.FileDescriptorSet(file=[file_proto])
with open(out, "wb") as f:
    f.write(descriptor_set.SerializeToString(deterministic=True))
PY
}

wkt_include() {
  "$PYTHON" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))'
}

# protoc with proto/ (or a copy of it) as the import root, the well-known types, and the
# protovalidate descriptor. Runs inside the module directory so file names are module-relative.
run_protoc() {
  local module_dir="$1"
  shift
  (cd "$module_dir" && "$PYTHON" -m grpc_tools.protoc \
    -I . -I "$WKT_INCLUDE" \
    --descriptor_set_in="$PV_DESCRIPTOR" \
    "$@")
}

prepare_inputs() {
  require_tools
  make_tmp
  WKT_INCLUDE="$(wkt_include)"
  PV_DESCRIPTOR="$TMP/protovalidate.binpb"
  write_protovalidate_descriptor "$PV_DESCRIPTOR" ||
    die "could not read buf/validate/validate.proto from the protovalidate package"
}

# Generates the Python package tree into the (new, empty) directory $1.
generate_into() {
  local out="$1" file
  local -a files service_files
  mapfile -t files < <(proto_files "$PROTO_DIR")
  ((${#files[@]} > 0)) || die "no .proto files under $PROTO_DIR/crm"
  service_files=()
  for file in "${files[@]}"; do
    if grep -qE '^[[:space:]]*service[[:space:]]+[A-Za-z_]' "$PROTO_DIR/$file"; then
      service_files+=("$file")
    fi
  done
  mkdir -p "$out"

  # Messages and their type stubs; buf/validate is generated too, because the generated
  # modules import buf.validate.validate_pb2 and protovalidate (2.x) does not ship it.
  run_protoc "$PROTO_DIR" \
    --plugin=protoc-gen-mypy="$VENV/bin/protoc-gen-mypy" \
    --python_out="$out" \
    --mypy_out=quiet:"$out" \
    "${files[@]}" "$PROTOVALIDATE_FILE"
  # gRPC stubs only for files that declare services (no empty *_pb2_grpc modules).
  if ((${#service_files[@]} > 0)); then
    run_protoc "$PROTO_DIR" \
      --plugin=protoc-gen-mypy_grpc="$VENV/bin/protoc-gen-mypy_grpc" \
      --grpc_python_out="$out" \
      --mypy_grpc_out=quiet:"$out" \
      "${service_files[@]}"
  fi

  # Regular packages (crm.contacts.v1 ...) and PEP 561 markers, so mypy reads the stubs.
  local pkg dir
  for pkg in "${GENERATED_PACKAGES[@]}"; do
    [[ -d "$out/$pkg" ]] || die "protoc produced no $pkg/ package"
    while IFS= read -r dir; do
      : >"$dir/__init__.py"
    done < <(find "$out/$pkg" -type d)
    : >"$out/$pkg/py.typed"
  done
}

cmd_generate() {
  prepare_inputs
  generate_into "$TMP/out"
  mkdir -p "$OUT_DIR"
  local pkg
  for pkg in "${GENERATED_PACKAGES[@]}"; do
    rm -rf "${OUT_DIR:?}/$pkg"
    cp -R "$TMP/out/$pkg" "$OUT_DIR/$pkg"
  done
  info "generated $(generated_files "$TMP/out" | wc -l | tr -d ' ') files into ${OUT_DIR#"$ROOT"/}/"
}

# Lists the generated files under $1 (relative to it), sorted.
generated_files() {
  local pkg
  for pkg in "${GENERATED_PACKAGES[@]}"; do
    if [[ -d "$1/$pkg" ]]; then
      (cd "$1" && find "$pkg" -type f -not -path '*/__pycache__/*' -not -name '*.pyc')
    fi
  done | LC_ALL=C sort
}

cmd_check() {
  prepare_inputs
  generate_into "$TMP/out"
  generated_files "$OUT_DIR" >"$TMP/committed.txt"
  generated_files "$TMP/out" >"$TMP/fresh.txt"
  local file
  {
    LC_ALL=C comm -13 "$TMP/committed.txt" "$TMP/fresh.txt" | sed 's/^/  missing: /'
    LC_ALL=C comm -23 "$TMP/committed.txt" "$TMP/fresh.txt" | sed 's/^/  not generated from proto\/: /'
    while IFS= read -r file; do
      cmp -s "$OUT_DIR/$file" "$TMP/out/$file" || echo "  out of date: $file"
    done < <(LC_ALL=C comm -12 "$TMP/committed.txt" "$TMP/fresh.txt")
  } >"$TMP/drift.txt"
  if [[ -s "$TMP/drift.txt" ]]; then
    {
      echo "proto.sh: generated code in ${OUT_DIR#"$ROOT"/}/ is stale:"
      cat "$TMP/drift.txt"
      echo "proto.sh: run \`make proto\` (bash scripts/proto.sh generate) and commit the result."
    } >&2
    exit 1
  fi
  info "generated code is current"
}

# Compiles the module at $1 into a buf-readable image $2 (with imports and source info, so
# that buf reports file:line:column and honours buf:lint:ignore comments).
build_image() {
  local module_dir="$1" image="$2"
  local -a files
  mapfile -t files < <(proto_files "$module_dir")
  ((${#files[@]} > 0)) || return 1
  run_protoc "$module_dir" \
    --include_imports --include_source_info \
    --descriptor_set_out="$image" \
    "${files[@]}"
}

# buf reports module-relative paths; make them repository-relative (proto/crm/...).
repo_paths() { sed -e 's#^crm/#proto/crm/#'; }

cmd_lint() {
  prepare_inputs
  build_image "$PROTO_DIR" "$TMP/image.binpb" || die "no .proto files under $PROTO_DIR/crm"
  # --path crm: lint our files only, not the imported google/ and buf/ files in the image.
  if ! "$BUF" lint "$TMP/image.binpb" --config "$PROTO_DIR/buf.yaml" --path crm "$@" | repo_paths; then
    die "buf lint failed (rules: proto/buf.yaml)"
  fi
  info "buf lint: ok"
}

cmd_breaking() {
  if ! git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    info "not in a git work tree; skipping buf breaking"
    return 0
  fi
  if ! git -C "$ROOT" rev-parse --verify --quiet "$BREAKING_AGAINST^{commit}" >/dev/null; then
    info "git ref '$BREAKING_AGAINST' does not exist; skipping buf breaking"
    return 0
  fi
  local top prefix
  top="$(git -C "$ROOT" rev-parse --show-toplevel)"
  prefix="$(cd "$ROOT" && git rev-parse --show-prefix)proto"
  if ! git -C "$top" ls-tree -r --name-only "$BREAKING_AGAINST" -- "$prefix" | grep -q '\.proto$'; then
    info "'$BREAKING_AGAINST' has no .proto files under $prefix/ yet; skipping buf breaking"
    return 0
  fi

  prepare_inputs
  mkdir -p "$TMP/against"
  git -C "$top" archive --format=tar "$BREAKING_AGAINST" -- "$prefix" | tar -x -C "$TMP/against"
  build_image "$TMP/against/$prefix" "$TMP/against.binpb" ||
    die "the protos on '$BREAKING_AGAINST' do not compile"
  build_image "$PROTO_DIR" "$TMP/image.binpb" || die "no .proto files under $PROTO_DIR/crm"
  if ! "$BUF" breaking "$TMP/image.binpb" --against "$TMP/against.binpb" \
    --config "$PROTO_DIR/buf.yaml" --path crm "$@" | repo_paths; then
    die "buf breaking: proto/ has changes that break '$BREAKING_AGAINST' (rules: proto/buf.yaml);" \
      "add a new version (crm.<area>.v2) instead of changing v1"
  fi
  info "buf breaking against '$BREAKING_AGAINST': ok"
}

cmd_format() {
  require_tools
  "$BUF" format -w "$PROTO_DIR"
  info "formatted proto/"
}

cmd_format_check() {
  require_tools
  if ! "$BUF" format -d --exit-code "$PROTO_DIR"; then
    die "proto/ is not formatted; run: bash scripts/proto.sh format"
  fi
  info "buf format: ok"
}

main() {
  (($# > 0)) || usage
  local cmd="$1"
  shift
  case "$cmd" in
  generate) cmd_generate ;;
  check) cmd_check ;;
  lint) cmd_lint "$@" ;;
  breaking) cmd_breaking "$@" ;;
  format) cmd_format ;;
  format-check) cmd_format_check ;;
  -h | --help | help) usage 0 ;;
  *)
    echo "proto.sh: unknown command '$cmd'" >&2
    usage
    ;;
  esac
}

main "$@"

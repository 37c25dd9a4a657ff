#!/usr/bin/env bash
# The data path of one VM, through the CLI as a user sees it: MB/s of exec
# stdout (binary and text), streamed stdin, and `cp` out and in, for each
# agentvmd build given, side by side on the same host in one run (each
# build gets its own daemon and VM, measured in turns so load drifts hit
# both alike).
#
# Usage: bench/data_path.sh [--mib N] [--runs N] [--image-dir DIR] BIN_DIR [BIN_DIR...]
#   BIN_DIR holds agentvmd and agentvm (e.g. build/bin). Default 50 MiB, 3 runs;
#   the table shows each build's median per measurement.
set -euo pipefail
mib=50
runs=3
image_dir=/var/lib/agentvm/images
bins=()
while (($#)); do
  case "$1" in
    --mib) mib=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --image-dir) image_dir=$2; shift 2 ;;
    -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) bins+=("$(realpath "$1")"); shift ;;
  esac
done
((${#bins[@]})) || { echo "data_path: give at least one BIN_DIR (see --help)" >&2; exit 2; }

source "$(dirname "$0")/lib.sh"

# One daemon and one VM per build: isolated network, no golden snapshots.
ids=()
for i in "${!bins[@]}"; do
  dir=$work/d$i
  start_daemon "$dir" "${bins[$i]}" "$image_dir" --no-golden-snapshots
  id=$(AGENTVM_SOCKET=$dir/api.sock "${bins[$i]}/agentvm" create --memory 512)
  ids+=("$id")
  AGENTVM_SOCKET=$dir/api.sock "${bins[$i]}/agentvm" exec "$id" -- sh -c \
    "head -c $((mib << 20)) /dev/urandom > /tmp/bin && head -c $((mib * 3 << 18)) /dev/urandom | base64 > /tmp/text"
done
head -c $((mib << 20)) /dev/urandom >"$work/in.bin"

measure() {  # build index, measurement name -> seconds
  local i=$1 dir=$work/d$1 a="${bins[$1]}/agentvm" id=${ids[$1]}
  export AGENTVM_SOCKET=$dir/api.sock
  case "$2" in
    "exec stdout, binary") seconds "$a" exec "$id" -- cat /tmp/bin ;;
    "exec stdout, text") seconds "$a" exec "$id" -- cat /tmp/text ;;
    "exec stdin (-i)") seconds "$a" exec -i "$id" -- sh -c 'cat > /dev/null' <"$work/in.bin" ;;
    "cp out") seconds "$a" cp "$id:/tmp/bin" "$dir/out.bin" ;;
    "cp in") seconds "$a" cp "$work/in.bin" "$id:/tmp/in.bin" ;;
  esac
}

names=("exec stdout, binary" "exec stdout, text" "exec stdin (-i)" "cp out" "cp in")
declare -A times
for run in $(seq "$runs"); do
  for name in "${names[@]}"; do
    for i in "${!bins[@]}"; do times[$i,$name]+="$(measure "$i" "$name") "; done
  done
done

printf '| %s MiB, median of %s |' "$mib" "$runs"
for bin in "${bins[@]}"; do printf ' %s |' "$bin"; done
echo
printf '|---|'; for _ in "${bins[@]}"; do printf -- '---:|'; done; echo
for name in "${names[@]}"; do
  printf '| %s |' "$name"
  for i in "${!bins[@]}"; do
    s=$(median <<<"${times[$i,$name]}")
    awk -v s="$s" -v mib="$mib" 'BEGIN {printf " %.1f MB/s (%.2f s) |", mib * 1.048576 / s, s}'
  done
  echo
done
echo "load average: $(load_average)"

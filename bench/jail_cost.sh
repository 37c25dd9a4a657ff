#!/usr/bin/env bash
# What the QEMU jail (docs/security.md) costs: cold boot to agent-ready,
# restore from the golden snapshot to agent-ready, and an exec of `true`,
# with the jail on and off, two daemons of the same build measured in turns
# in one run. Golden snapshots are built first, untimed.
#
# Usage: bench/jail_cost.sh [--runs N] [--execs N] [--image-dir DIR] [BIN_DIR]
#   BIN_DIR holds agentvmd and agentvm (default: build/bin). Default 5 runs
#   of each boot and 50 execs per run; the table shows medians.
set -euo pipefail
runs=5
execs=50
image_dir=/var/lib/agentvm/images
bin=$(dirname "$0")/../build/bin
while (($#)); do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --execs) execs=$2; shift 2 ;;
    --image-dir) image_dir=$2; shift 2 ;;
    -h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) bin=$1; shift ;;
  esac
done
bin=$(realpath "$bin")
source "$(dirname "$0")/lib.sh"

modes=(on off)
for mode in "${modes[@]}"; do
  enabled=$([[ $mode == on ]] && echo true || echo false)
  printf 'jail:\n  enabled: %s\n' "$enabled" >"$work/$mode.yaml"
  start_daemon "$work/$mode" "$bin" "$image_dir" --config "$work/$mode.yaml"
done

build_goldens "${modes[@]}"

declare -A times
for _ in $(seq "$runs"); do
  for kind in cold restore; do
    for mode in "${modes[@]}"; do times[$mode,$kind]+="$(boot_seconds "$mode" "$kind") "; done
  done
done
for mode in "${modes[@]}"; do
  id=$(cli "$mode" create --boot restore)
  for _ in $(seq "$execs"); do times[$mode,exec]+="$(seconds cli "$mode" exec "$id" -- true) "; done
  cli "$mode" release "$id" >/dev/null
done

echo "| median | jail on | jail off | on / off |"
echo "|---|---:|---:|---:|"
for kind in cold restore exec; do
  on=$(median <<<"${times[on,$kind]}")
  off=$(median <<<"${times[off,$kind]}")
  awk -v k="$kind" -v on="$on" -v off="$off" \
    'BEGIN {printf "| %s | %.0f ms | %.0f ms | %.3f |\n", k, on * 1000, off * 1000, on / off}'
done
echo "runs: $runs boots of each, $execs execs; load average: $(load_average)"

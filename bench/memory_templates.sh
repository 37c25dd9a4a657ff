#!/usr/bin/env bash
# Copy-on-write memory templates (docs/snapshots.md) against full-copy
# restores: two daemons of one build, `memory_templates: cow` and `copy`,
# measured in turns in one run.
#   1. cold boot, restore (cow) and restore (copy) to agent-ready, alternated;
#   2. N idle clones of each kind side by side: per clone, QEMU's PSS and
#      Private_Dirty (/proc/PID/smaps_rollup), the host's MemAvailable drop,
#      and how long the daemon takes to answer GET /v1/vms with them all up;
#   3. with --density MAX: cow clones added one at a time until GET /v1/vms
#      takes over 100 ms, MemAvailable falls under 2 GiB, or MAX are up.
# Golden snapshots are built first, untimed.
#
# Usage: bench/memory_templates.sh [--runs N] [--clones "10 50"] [--copy-clones "10"]
#                                  [--density MAX] [--image-dir DIR] [BIN_DIR]
#   BIN_DIR holds agentvmd and agentvm (default: build/bin). Default 5 runs of
#   each boot kind; clone counts are measured one after the other. --runs 0
#   and empty clone lists skip those parts.
set -euo pipefail
runs=5
cow_clones="10 50"
copy_clones="10"
density=0
image_dir=/var/lib/agentvm/images
bin=$(dirname "$0")/../build/bin
while (($#)); do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --clones) cow_clones=$2; shift 2 ;;
    --copy-clones) copy_clones=$2; shift 2 ;;
    --density) density=$2; shift 2 ;;
    --image-dir) image_dir=$2; shift 2 ;;
    -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) bin=$1; shift ;;
  esac
done
bin=$(realpath "$bin")
source "$(dirname "$0")/lib.sh"

modes=(cow copy)
for mode in "${modes[@]}"; do
  start_daemon "$work/$mode" "$bin" "$image_dir" --memory-templates "$mode"
done
build_goldens "${modes[@]}"

# 1. Boot times (--runs 0: skipped).
if ((runs > 0)); then
  declare -A times
  for _ in $(seq "$runs"); do
    times[cold]+="$(boot_seconds cow cold) "
    for mode in "${modes[@]}"; do times[$mode]+="$(boot_seconds "$mode" restore) "; done
  done
  cold=$(median <<<"${times[cold]}")
  cow=$(median <<<"${times[cow]}")
  copy=$(median <<<"${times[copy]}")
  echo "### Restore to agent-ready ($runs runs of each, medians; load average $(load_average))"
  echo
  echo "| cold boot | restore, cow | restore, copy | cow / cold | copy / cold | cow / copy |"
  echo "|---:|---:|---:|---:|---:|---:|"
  awk -v a="$cold" -v b="$cow" -v c="$copy" 'BEGIN {
    printf "| %.0f ms | %.0f ms | %.0f ms | %.3f | %.3f | %.2f |\n", a * 1000, b * 1000, c * 1000, b / a, c / a, b / c }'
  for mode in "${modes[@]}"; do
    state=$(find "$work/$mode/state/golden" -mindepth 2 -maxdepth 2 -name state -printf '%s')
    memory=$(find "$work/$mode/state/golden" -mindepth 2 -maxdepth 2 -name memory -printf '%s %b' 2>/dev/null || true)
    echo
    echo "golden snapshot ($mode): state $((state / 1024)) KiB${memory:+, memory $(awk '{printf "%d MiB, %d MiB on disk", $1 / 1048576, $2 * 512 / 1048576}' <<<"$memory")}"
  done
fi

# 2. Idle clones side by side.
# GET /v1/vms, connect to last byte, in whole ms (curl: no CLI start-up counted).
list_ms() {
  curl -s -o /dev/null -w '%{time_total}' --unix-socket "$work/$1/api.sock" http://agentvm/v1/vms |
    awk '{printf "%.0f", $1 * 1000}'
}
mem_available_kib() { awk '/^MemAvailable:/ {print $2}' /proc/meminfo; }
smaps_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/smaps_rollup"; }
if [[ -n "$cow_clones$copy_clones" ]]; then
  echo
  echo "### Idle clones side by side (load average $(load_average))"
  echo
  echo "| kind | clones | PSS per clone (median) | Private_Dirty per clone | MemAvailable drop | per clone | GET /v1/vms |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
fi
measure() {  # mode, clones
  local mode=$1 n=$2 before ids=() pss=() dirty=() id pid after listed
  before=$(mem_available_kib)
  for _ in $(seq "$n"); do ids+=("$(cli "$mode" create --boot restore)"); done
  sleep 10  # past the guests' first work after cont
  for id in "${ids[@]}"; do
    pid=$(cli "$mode" inspect "$id" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' | head -1)
    pss+=("$(smaps_kib "$pid" Pss)")
    dirty+=("$(smaps_kib "$pid" Private_Dirty)")
  done
  after=$(mem_available_kib)
  listed=$(list_ms "$mode")
  awk -v mode="$mode" -v n="$n" -v pss="$(printf '%s\n' "${pss[@]}" | median)" \
    -v dirty="$(printf '%s\n' "${dirty[@]}" | median)" -v drop=$((before - after)) -v ms="$listed" 'BEGIN {
      printf "| %s | %d | %.1f MB | %.1f MB | %.0f MB | %.1f MB | %s ms |\n",
             mode, n, pss / 1024, dirty / 1024, drop / 1024, drop / 1024 / n, ms }'
  for id in "${ids[@]}"; do cli "$mode" rm -f "$id" >/dev/null; done
  sleep 2
}
for n in $cow_clones; do measure cow "$n"; done
for n in $copy_clones; do measure copy "$n"; done

# 3. Density.
if ((density > 0)); then
  ids=()
  why="reached --density $density"
  while ((${#ids[@]} < density)); do
    ids+=("$(cli cow create --boot restore)")
    slowest=0
    for _ in 1 2 3; do
      ms=$(list_ms cow)
      ((ms > slowest)) && slowest=$ms
    done
    if ((slowest > 100)); then why="GET /v1/vms took $slowest ms"; break; fi
    if (($(mem_available_kib) < 2 * 1024 * 1024)); then why="MemAvailable under 2 GiB"; break; fi
  done
  echo
  echo "density: ${#ids[@]} idle cow clones up, stopped because $why; MemAvailable $(($(mem_available_kib) / 1024)) MB; load average $(load_average)"
  for id in "${ids[@]}"; do cli cow rm -f "$id" >/dev/null; done
fi

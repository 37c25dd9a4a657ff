#!/bin/bash
# bench/restore_ab.sh RUNS NAME=BIN_DIR:IMAGE_DIR...: restores to agent-ready (create --boot restore), one daemon per
# NAME with its own build and images, measured in turns; each daemon's median and its logged phases.
set -euo pipefail
runs=$1; shift
source "$(dirname "$0")/lib.sh"
names=()
for spec in "$@"; do
  name=${spec%%=*} rest=${spec#*=}; bin=${rest%%:*} images=$(realpath ${rest#*:})
  names+=($name); declare -g "bin_$name=$bin"
  mkdir -p $work/$name
  $bin/agentvmd --socket $work/$name/api.sock --state-dir $work/$name/state --run-dir $work/$name/run \
    --image-dir $images --default-network isolated --log-level info >$work/$name/agentvmd.log 2>&1 &
  daemon_pids+=($!)
  for _ in $(seq 100); do [[ -S $work/$name/api.sock ]] && break; sleep 0.1; done
done
for name in "${names[@]}"; do bin=$(eval echo \$bin_$name); build_goldens $name; done
echo "load before: $(load_average)"
for i in $(seq $runs); do
  for name in "${names[@]}"; do bin=$(eval echo \$bin_$name); t=$(boot_seconds $name restore); echo "$name $t" >> $work/times; done
done
echo "load after: $(load_average)"
for name in "${names[@]}"; do
  echo "$name: median $(grep "^$name " $work/times | cut -d' ' -f2 | median) s; all: $(grep "^$name " $work/times | cut -d' ' -f2 | tr '\n' ' ')"
  grep 'restored in' $work/$name/agentvmd.log | sed 's/.*restored in/  restored in/' | tail -n $runs
done

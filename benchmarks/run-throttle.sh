#!/usr/bin/env bash
# The snapshot throttle's figures (issue 18), with benchmarks/DBSync.SnapshotBench on a throwaway cluster:
#   1. the full run at the defaults (SnapshotMaxImpact 0.10) with small memory sizes: the idle snapshot time, the snapshot's
#      rows/s under pgbench -c 4 -j 2 (scale 10), and the interleaved tps ratio (snapshots running / paused);
#   2. the interleaved tps ratio with the throttle off (--busy-share 1), for the snapshot's flat-out cost.
# Prints, last, "ratio snapshot speed loaded/idle" and "ratio tps snapshots-running/paused" for 1, and the flat-out ratio.
#   benchmarks/run-throttle.sh [--rounds N]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3
[[ "${1:-}" == "--rounds" ]] && rounds=$2
project=benchmarks/DBSync.SnapshotBench
dotnet build "$project/DBSync.SnapshotBench.csproj" -c Release -nologo -v quiet >&2
bench="dotnet $project/bin/Release/net10.0/DBSync.SnapshotBench.dll"
out=$(mktemp)
$bench all --rounds "$rounds" --pgbench-seconds 20 --interleaved-seconds 40 --big-rows 1000001 | tee "$out" >&2
rows=$(sed -n 's/.*users: \([0-9,]*\) rows.*/\1/p' "$out" | tr -d ,)
idle=$(sed -n 's/.*DBSync snapshot into User objects: *\([0-9.]*\) s.*/\1/p' "$out")
loaded=$(sed -n 's/.*snapshot rows\/s under load \([0-9,]*\).*/\1/p' "$out" | tr -d ,)
tps=$(sed -n 's/.*ratio per round: *\([0-9.]*\).*/\1/p' "$out")
flat=$($bench tps --rounds "$rounds" --interleaved-seconds 40 --busy-share 1 | tee -a /dev/stderr | sed -n 's/.*ratio tps snapshots-running\/paused = \([0-9.]*\).*/\1/p')
echo "idle snapshot $rows rows in $idle s ($(awk -v r="$rows" -v t="$idle" 'BEGIN { printf "%.0f", r / t }') rows/s); under load $loaded rows/s"
echo "ratio tps snapshots-running/paused, throttle off = $flat"
echo "ratio snapshot speed loaded/idle = $(awk -v l="$loaded" -v r="$rows" -v t="$idle" 'BEGIN { printf "%.2f", l / (r / t) }')"
echo "ratio tps snapshots-running/paused = $tps"
rm -f "$out"

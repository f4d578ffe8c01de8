#!/usr/bin/env bash
# End-to-end snapshot benchmark (README.md, "Benchmarks"). On a throwaway PostgreSQL (or the one POSTGRES_* names):
#  - a full DBSync snapshot of 1M rows of the seed's users table, delivered as typed Read changes, against a binary
#    COPY of the same table into the same User objects, in the same run (medians of 3, alternating);
#  - pgbench tps (scale 10, 4 clients, 10 s) while snapshots run, against tps without them (medians of 3 pairs);
#  - peak working set of a process snapshotting 1M and then 5M rows.
# The last three lines are the ratios. `benchmarks/run-snapshot.sh chunks [rows]` instead times the chunk sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build benchmarks/DBSync.SnapshotBench -c Release -v quiet -nologo >/dev/null
exec dotnet benchmarks/DBSync.SnapshotBench/bin/Release/net10.0/DBSync.SnapshotBench.dll "${@:-all}"

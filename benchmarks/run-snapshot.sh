#!/usr/bin/env bash
# End-to-end snapshot benchmark (benchmarks/DBSync.SnapshotBench), on a throwaway PostgreSQL cluster (initdb from
# /usr/lib/postgresql/*/bin or PG_BIN) unless POSTGRES_HOST names a server with wal_level=logical:
#   1. DBSync's full snapshot of 1M users rows into User objects against two baselines in the same process: a binary
#      COPY of the same rows into the same objects, and keyset SELECTs of --chunk-size rows (the chunks' access path
#      without DBSync's watermarks, transactions and stream); the order turns every round; medians over rounds;
#   2. pgbench tps (-s 10 -c 4 -j 2 -T 15), medians over rounds: without logical replication, with pg_recvlogical streaming,
#      with DBSync streaming, and with DBSync streaming while it snapshots users back to back; then one pgbench run
#      (--interleaved-seconds, 60) with DBSync streaming throughout and its snapshots running or paused in 5 s phases
#      (in random order by pairs): the tps ratio is the seconds with snapshots running against the seconds with them
#      paused (median over rounds), so that the shared machine's changing load falls on both sides; the separate runs
#      are printed above it;
#   3. peak working set of a child process that snapshots 1M, then 5M users rows.
# Prints the raw figures, then as its last three lines the ratios. Options (all optional):
#   benchmarks/run-snapshot.sh [--rows N] [--big-rows N] [--rounds N] [--pgbench-seconds N] [--interleaved-seconds N] [--pgbench-scale N]
#                              [--chunk-size N] [--busy-share X]
#   benchmarks/run-snapshot.sh chunks [--rows N] [--rounds N]    snapshot time per chunk size, as a ratio to COPY
#   benchmarks/run-snapshot.sh tps [--rows N] [--rounds N] [--interleaved-seconds N] [--busy-share X]   the interleaved
#                                                                 tps measurement alone
set -euo pipefail
cd "$(dirname "$0")/.."

command -v dotnet >/dev/null 2>&1 || { echo "The .NET 10 SDK is required (dotnet not found on PATH)." >&2; exit 1; }

project=benchmarks/DBSync.SnapshotBench
dotnet build "$project/DBSync.SnapshotBench.csproj" -c Release -nologo -v quiet >&2
exec dotnet "$project/bin/Release/net10.0/DBSync.SnapshotBench.dll" "$@"

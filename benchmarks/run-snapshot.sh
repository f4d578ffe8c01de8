#!/usr/bin/env bash
# End-to-end snapshot benchmark (benchmarks/DBSync.SnapshotBench), on a throwaway PostgreSQL cluster (initdb from
# /usr/lib/postgresql/*/bin or PG_BIN) unless POSTGRES_HOST names a server with wal_level=logical:
#   1. DBSync's full snapshot of 1M users rows into User objects against two baselines in the same process: a binary
#      COPY of the same rows into the same objects, and keyset SELECTs of --chunk-size rows (the chunks' access path
#      without DBSync's watermarks, transactions and stream); the order turns every round; medians over rounds;
#   2. pgbench tps (-s 10 -c 4 -j 2 -T 15), medians over rounds: without logical replication, with pg_recvlogical streaming,
#      with DBSync streaming, and with DBSync streaming while it snapshots users back to back; then one pgbench run
#      (--interleaved-seconds, 60) with DBSync streaming throughout and its snapshots running or paused in 5 s phases
#      (in random order by pairs): "ratio tps snapshots-running/paused" is the seconds with snapshots running against the
#      seconds with them paused (while paused the snapshot yields entirely; median over rounds), so that the shared
#      machine's changing load falls on both sides; then the loaded run: one pgbench run of 2 x 15 s (the same
#      -s 10 -c 4 -j 2) with DBSync streaming throughout and its snapshots running back to back in one half, paused in
#      the other (the order turns every round): "ratio snapshot speed loaded/idle" is the snapshot rows delivered per
#      second in the running half against the idle snapshot of 1. (rows / its time), and "ratio tps snapshot/none" the
#      running half's tps against the other half's, both from that same run (medians of the rounds' ratios); the
#      separate runs are printed above them;
#   3. peak working set of a child process that snapshots 1M, then 5M users rows.
# Prints the raw figures, then as its last five lines the ratios: snapshot dbsync/copy (idle), tps
# snapshots-running/paused, snapshot speed loaded/idle, tps snapshot/none, peak memory 5M/1M.
# DBSYNC_SNAPSHOT_PARALLELISM=N sets SnapshotParallelism (the chunks a snapshot reads at once) in every DBSync client of
# the run; unset, the option's default. Options (all optional):
#   benchmarks/run-snapshot.sh [--rows N] [--big-rows N] [--rounds N] [--pgbench-seconds N] [--interleaved-seconds N] [--pgbench-scale N]
#                              [--chunk-size N] [--busy-share X]
#   benchmarks/run-snapshot.sh chunks [--rows N] [--rounds N]    snapshot time per chunk size, as a ratio to COPY
#   benchmarks/run-snapshot.sh tps [--rows N] [--rounds N] [--interleaved-seconds N] [--busy-share X]   the interleaved
#                                                                 tps measurement alone
#   benchmarks/run-snapshot.sh readpath [--rows N] [--rounds N] [--chunk-size N]   a chunk's raw values through binary
#                                                                 results (DBSync's path) or a binary COPY of the chunk
#                                                                 query; last line "ratio chunk read copy/select = X.XX"
set -euo pipefail
cd "$(dirname "$0")/.."

command -v dotnet >/dev/null 2>&1 || { echo "The .NET 10 SDK is required (dotnet not found on PATH)." >&2; exit 1; }

project=benchmarks/DBSync.SnapshotBench
dotnet build "$project/DBSync.SnapshotBench.csproj" -c Release -nologo -v quiet >&2
exec dotnet "$project/bin/Release/net10.0/DBSync.SnapshotBench.dll" "$@"

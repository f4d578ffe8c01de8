#!/usr/bin/env bash
# Applier benchmark (benchmarks/DBSync.ApplyBench): pgbench's tables copied from a source cluster into a target cluster
# (two throwaway PostgreSQL clusters, initdb from /usr/lib/postgresql/*/bin or PG_BIN, run as the postgres user when
# run as root) by DBSync and by PostgreSQL's own logical replication, in the same run, into two databases of the target:
#   DBSync: a DBSyncClient with an initial snapshot of the four tables, applied by a PostgresApplier (the mapping is in
#     benchmarks/DBSync.ApplyBench/PgbenchMapping.cs: the generated MapTable<T>, batched, chunks through COPY);
#   subscription: CREATE SUBSCRIPTION ... WITH (copy_data = true) on a publication of the four tables, defaults otherwise.
# Both targets get the tables' schema from pg_dump --schema-only. pgbench_history has no key: the benchmark adds
# "id bigserial PRIMARY KEY" on the source before either copier starts (DBSync needs a key; the targets get it too).
# Before the rounds, not counted: each copier copies a scale-1 database once (DBSync's first copy in a process spends
# seconds on JIT compilation). A subscription is created at least 6 s after the previous one was dropped: PostgreSQL's
# launcher starts workers at most once per wal_retrieve_retry_interval (5 s), which would otherwise be timed as copying.
# Per round (fresh databases each):
#   (a) the initial copy (pgbench -i -s SCALE), one copier at a time, the order turning every round: from its start
#       (RunAsync, or CREATE SUBSCRIPTION) until the copier reports it done and the target's row counts equal the source's;
#   (b) pgbench -c 4 -T 60 on the source, unthrottled, both copiers applying: each target's lag sampled every second
#       (the source's WAL insert position minus the end position of the target's last applied transaction, from the
#       applier's progress table and the subscription's replication origin), then the time from pgbench's end until
#       each target has a row committed just after pgbench's last transaction;
#   (c) one UPDATE pgbench_accounts SET abalance = abalance + 1: time from its commit until each target has it;
#   then each table of both targets is checked against the source (row count and md5 of the rows in key order): the
#   run fails loudly if one differs.
# Prints the raw figures, medians over rounds, and as its last two lines:
#   ratio initial copy dbsync/subscription = X.XX
#   ratio catch-up dbsync/subscription = X.XX
# Options (all optional): benchmarks/run-apply.sh [--rounds N (3)] [--scale N (10)] [--pgbench-seconds N (60)] [--clients N (4)]
# Environment knobs for comparing DBSync's settings (each printed when set): DBSYNC_SNAPSHOT_CHUNK_SIZE (SnapshotChunkSize),
# DBSYNC_SNAPSHOT_PARALLELISM (SnapshotParallelism), DBSYNC_MAX_GROUP_DELAY_MS (the applier's MaxGroupDelay).
# At the default scale 10 a round takes from a few minutes to over half an hour, depending on the applier's speed;
# --scale 1 runs a smaller copy while developing. --dbsync-copies N runs only DBSync's initial copy, N times, each with
# the process's CPU time (for profiling and settings; no subscription, no ratio); add --fresh-source 1 for a new pgbench
# source database before each copy, as every round of the full run has.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v dotnet >/dev/null 2>&1 || { echo "The .NET 10 SDK is required (dotnet not found on PATH)." >&2; exit 1; }

project=benchmarks/DBSync.ApplyBench
dotnet build "$project/DBSync.ApplyBench.csproj" -c Release -nologo -v quiet >&2
exec dotnet "$project/bin/Release/net10.0/DBSync.ApplyBench.dll" "$@"

#!/usr/bin/env bash
# End-to-end stream benchmark (benchmarks/DBSync.StreamBench), on a throwaway PostgreSQL cluster (initdb from
# /usr/lib/postgresql/*/bin or PG_BIN) unless POSTGRES_HOST names a server with wal_level=logical:
#   1. one backlog behind a template slot: 1M users rows inserted in 1,000-row transactions, then 200k single-row
#      update transactions (pgbench, 4 clients);
#   2. per round, each consumer drains its own copy of the template slot to the backlog's last commit:
#      pg_recvlogical into /dev/null (the walsender's limit), Npgsql's pgoutput decoder reading every value with
#      Get<T>() into User objects, DBSync delivering Change<User> to a handler that touches every field, and the same
#      on Npgsql's replication connection (DBSync's fallback); the order turns every round; wall time and CPU time
#      of each consumer timed the same way, from its process start to its exit (the output says so; the .NET drains'
#      own time from connecting is printed alongside), and bytes allocated per event, medians over rounds;
#   3. DBSync's commit-to-handler latency (p50, p99) while pgbench commits single-row inserts at 5,000 tx/s, on its
#      own replication connection and on Npgsql's.
# Prints the raw figures, then as its last three lines the ratios. Options (all optional):
#   benchmarks/run-e2e.sh [--rows N] [--batch N] [--updates N] [--rounds N] [--latency-rate N] [--latency-seconds N]
set -euo pipefail
cd "$(dirname "$0")/.."

command -v dotnet >/dev/null 2>&1 || { echo "The .NET 10 SDK is required (dotnet not found on PATH)." >&2; exit 1; }

project=benchmarks/DBSync.StreamBench
dotnet build "$project/DBSync.StreamBench.csproj" -c Release -nologo -v quiet >&2
exec dotnet "$project/bin/Release/net10.0/DBSync.StreamBench.dll" "$@"

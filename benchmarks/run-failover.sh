#!/usr/bin/env bash
# Failover benchmark (issue 19), benchmarks/DBSync.FailoverBench: three DBSync instances (processes of
# tests/DBSync.CrashConsumer, SlotInUse.Wait, DBSync's default StandbyPollInterval of 250 ms) on one slot of a throwaway
# PostgreSQL (initdb from /usr/lib/postgresql/*/bin or PG_BIN, as the postgres user when run as root; wal_sender_timeout
# 10 s), applying into a replica database; a writer commits 100 single-row transactions a second. 20 times the active
# instance (the process that delivered last) is killed with SIGKILL, and a new process started so that three are alive
# again. Per kill it prints when the next instance became active and delivered its first change; at the end it checks
# that the replica equals the source, each change applied once, one instance delivering at a time. Last lines:
#   failover seconds p50 = X.XX
#   failover seconds p99 = X.XX
# (the median and the nearest-rank 99th percentile of the seconds from a kill to the next instance's first delivered
# change; of 20 kills, p99 is the slowest). Issue 19's goal: p99 <= 1 s after a SIGKILL.
#   benchmarks/run-failover.sh [--kills N (20)] [--rate TPS (100)] [--standby-poll-ms N (250)]
#   benchmarks/run-failover.sh --silent N [--wal-sender-timeout S (10)] [--receive-timeout S (= wal_sender_timeout)]
# --silent N: instead of SIGKILLs, N times the active instance's network goes silent (its own TCP relay to the server
# stops carrying anything, closing nothing); the next instance takes over once the server's wal_sender_timeout ends the
# silent walsender. Each line also says when the deposed instance noticed (its ReceiveTimeout) and what it did once the
# network came back. Last lines: "failover seconds (silent network, wal_sender_timeout = S s) p50 = X.XX" and p99.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v dotnet >/dev/null 2>&1 || { echo "The .NET 10 SDK is required (dotnet not found on PATH)." >&2; exit 1; }

project=benchmarks/DBSync.FailoverBench
dotnet build "$project/DBSync.FailoverBench.csproj" -c Release -nologo -v quiet >&2
exec dotnet "$project/bin/Release/net10.0/DBSync.FailoverBench.dll" --consumer tests/DBSync.CrashConsumer/bin/Release/net10.0/DBSync.CrashConsumer.dll "$@"

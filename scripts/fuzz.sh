#!/usr/bin/env bash
# Property-based fuzzing of every operation in voxprov's own OpenAPI document with
# schemathesis (PyPI), against a real server on SQLite or PostgreSQL.
#
#   scripts/fuzz.sh BINARY sqlite|postgres [EXAMPLES] [CHECKS]
#
# EXAMPLES: test cases per operation (default 50). CHECKS: schemathesis checks (default
# not_a_server_error). The server is given a few objects first, so that generated ids and
# filters also hit things that exist. Exit status: schemathesis's, or 1 when the server's log
# shows a panic.
set -euo pipefail
bin=${1:?binary}
backend=${2:?sqlite or postgres}
examples=${3:-50}
checks=${4:-not_a_server_error}
command -v schemathesis >/dev/null 2>&1 || python3 -m pip install -q 'schemathesis>=4,<5'

dir=$(mktemp -d /tmp/vxfuzz.XXXXXX)
pass=fuzz-admin-pass
case "$backend" in
    sqlite) url="sqlite://$dir/voxprov.db" ;;
    postgres)
        admin=${VOXPROV_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
        db="vxfuzz_$$"
        psql "$admin" -qAtc "DROP DATABASE IF EXISTS $db" && psql "$admin" -qAtc "CREATE DATABASE $db"
        url="${admin%/*}/$db"
        ;;
    *) echo "backend: sqlite or postgres" >&2; exit 2 ;;
esac
cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    [ "$backend" = postgres ] && psql "$admin" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT

# Generated bodies are refused far more often than accepted: no auth back-off for this client,
# no waiting for SIP servers that do not exist.
VOXPROV_ADMIN_PASSWORD=$pass VOXPROV_LOG=warn VOXPROV_AUTH_MAX_FAILURES=1000000 VOXPROV_SYNC_WAIT_MS=0 \
    "$bin" serve --listen 127.0.0.1:0 --data-dir "$dir" --database-url "$url" \
    >"$dir/stdout" 2>"$dir/server.log" &
pid=$!
for _ in $(seq 1 100); do
    base=$(sed -n 's/^voxprov listening on //p' "$dir/stdout")
    [ -n "$base" ] && break
    sleep 0.1
done
[ -n "$base" ] || { cat "$dir/server.log"; exit 1; }
api() { curl -sf -u "administrator:$pass" -H 'Content-Type: application/json' "$base/api/$1" -d "$2" >/dev/null; }
api domains/ '{"domain":"fuzz.example.com","reseller_id":1}'
api billingprofiles/ '{"handle":"fuzz","name":"Fuzz","reseller_id":1}'
api customercontacts/ '{"reseller_id":1,"email":"fuzz@example.com"}'
api customers/ '{"contact_id":1,"billing_profile_id":1,"type":"sipaccount","status":"active"}'
api subscribers/ '{"customer_id":1,"domain":"fuzz.example.com","username":"fuzzer","password":"fuzz-pass-77","primary_number":{"cc":43,"ac":1,"sn":5550000}}'
api resellers/ '{"name":"fuzz-reseller"}'

status=0
schemathesis run "$base/api/openapi.json" --url "$base" \
    --auth "administrator:$pass" --checks "$checks" --max-examples "$examples" \
    --phases examples,coverage,fuzzing --generation-allow-x00 true \
    --request-timeout 30 --no-color --workers 2 --seed 14 ${FUZZ_ARGS:-} || status=$?
if grep -q "panicked" "$dir/server.log"; then
    echo "the server panicked:" >&2
    grep -A5 "panicked" "$dir/server.log" | head -40 >&2
    status=1
fi
if grep -q '"internal error"\|status=500' "$dir/server.log"; then
    grep -m5 'ERROR' "$dir/server.log" >&2 || true
fi
exit "$status"

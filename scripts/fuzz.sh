#!/usr/bin/env bash
# Property-based fuzzing of every operation in voxprov's own OpenAPI document with
# schemathesis (PyPI), against a real server on SQLite or PostgreSQL.
#
#   scripts/fuzz.sh BINARY sqlite|postgres [EXAMPLES] [CHECKS]
#
# EXAMPLES: test cases per operation (default 50). CHECKS: schemathesis checks (default
# not_a_server_error; `all` for every check). FUZZ_ARGS: more schemathesis options, e.g.
# `--exclude-checks positive_data_acceptance` (that check counts every business-rule refusal
# of a well-formed request — a 423 for a domain in use — as a failure). The server is given a few objects first, so that generated ids and
# filters also hit things that exist. Exit status: schemathesis's, or 1 when the server's log
# shows a panic.
set -euo pipefail
bin=${1:?binary}
backend=${2:?sqlite or postgres}
examples=${3:-50}
checks=${4:-not_a_server_error}
# schemathesis from PyPI, in a virtualenv of its own (Debian's Python refuses system-wide pip
# installs), pinned so that the same seed generates the same cases.
version=4.32.5
if ! schemathesis --version 2>/dev/null | grep -q "$version"; then
    venv=${XDG_CACHE_HOME:-$HOME/.cache}/voxprov/schemathesis-$version
    if [ ! -x "$venv/bin/schemathesis" ]; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q "schemathesis==$version"
    fi
    PATH="$venv/bin:$PATH"
fi

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
# Creates one object; prints its id (from Location).
api() {
    curl -sf -o /dev/null -D - -u "administrator:$pass" -H 'Content-Type: application/json' \
        "$base/api/$1" -d "$2" | sed -n 's|^[Ll]ocation: .*/\([0-9]*\)\r*$|\1|p'
}
api domains/ '{"domain":"fuzz.example.com","reseller_id":1}' >/dev/null
bp=$(api billingprofiles/ '{"handle":"fuzz","name":"Fuzz","reseller_id":1}')
cc=$(api customercontacts/ '{"reseller_id":1,"email":"fuzz@example.com"}')
cu=$(api customers/ "{\"contact_id\":$cc,\"billing_profile_id\":$bp,\"type\":\"sipaccount\",\"status\":\"active\"}")
api subscribers/ "{\"customer_id\":$cu,\"domain\":\"fuzz.example.com\",\"username\":\"fuzzer\",\"password\":\"fuzz-pass-77\",\"primary_number\":{\"cc\":43,\"ac\":1,\"sn\":5550000}}" >/dev/null
sc=$(api systemcontacts/ '{"email":"contracts@example.com"}')
ct=$(api contracts/ "{\"contact_id\":$sc,\"type\":\"reseller\",\"status\":\"active\"}")
api resellers/ "{\"name\":\"fuzz-reseller\",\"contract_id\":$ct,\"status\":\"active\"}" >/dev/null
pc=$(api contracts/ "{\"contact_id\":$sc,\"type\":\"sippeering\",\"status\":\"active\"}")
pg=$(api peeringgroups/ "{\"contract_id\":$pc,\"name\":\"fuzz-carrier\"}")
rs=$(api rewriterulesets/ '{"reseller_id":1,"name":"fuzz-rewrite"}')
api rewriterules/ "{\"set_id\":$rs,\"direction\":\"in\",\"field\":\"callee\",\"match_pattern\":\"^0(.*)$\",\"replace_pattern\":\"49\\\\1\"}" >/dev/null
api peeringservers/ "{\"group_id\":$pg,\"name\":\"fuzz-gw\",\"ip\":\"192.0.2.1\",\"rewrite_rule_set_id\":$rs}" >/dev/null
api peeringrules/ "{\"group_id\":$pg,\"callee_prefix\":\"49\"}" >/dev/null
api peeringinboundrules/ "{\"group_id\":$pg,\"field\":\"from_user\",\"pattern\":\"^[0-9]+$\"}" >/dev/null
nl=$(api ncoslevels/ '{"reseller_id":1,"level":"fuzz-ncos"}')
api ncospatterns/ "{\"ncos_level_id\":$nl,\"pattern\":\"0900\"}" >/dev/null
pcu=$(api customers/ "{\"contact_id\":$cc,\"billing_profile_id\":$bp,\"type\":\"pbxaccount\",\"status\":\"active\"}")
tn=$(api pbxtenants/ "{\"customer_id\":$pcu,\"name\":\"fuzz-pbx\",\"description\":\"Fuzz\",\"domain\":\"fuzz.example.com\"}")
api pbxextensions/ "{\"tenant_id\":$tn,\"extension\":\"201\",\"type\":\"unprovisioned\",\"password\":\"fuzz-ext-pass-1\"}" >/dev/null
api pbxextensions/ "{\"tenant_id\":$tn,\"extension\":\"202\",\"type\":\"unprovisioned\",\"password\":\"fuzz-ext-pass-2\"}" >/dev/null
api pbxringgroups/ "{\"tenant_id\":$tn,\"number\":\"400\",\"out\":\"201 202\",\"outcome\":\"201\"}" >/dev/null
api pbxdaytimers/ "{\"tenant_id\":$tn,\"dayofweek\":\"mon\",\"timespan\":\"08:00-17:00\"}" >/dev/null
api pbxholidaytimers/ "{\"tenant_id\":$tn,\"stime\":1798761600,\"etime\":1798848000}" >/dev/null
[ -n "$cu" ] && [ -n "$ct" ] && [ -n "$pg" ] && [ -n "$nl" ] && [ -n "$tn" ] || { echo "setting up the objects failed" >&2; exit 1; }

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

#!/usr/bin/env bash
# Runs the whole voxprov test suite. Meant for a fresh Debian 12 machine as root (CI runs it
# through .ci/run); on a prepared machine it installs nothing and only runs the tests.
#
#   VOXPROV_TEST_POSTGRES_URL  PostgreSQL admin URL for the tests
#                              (default: postgres://<postgres|root>@127.0.0.1:5432/test)
#   VOXPROV_TEST_THREADS       parallel test threads (default 4)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { echo "==> $*"; }
die() { echo "error: $*" >&2; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); fi
fi

apt_updated=no
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "missing packages ($*) and no apt-get to install them"
    if [ "$apt_updated" = no ]; then
        step "apt-get update"
        "${SUDO[@]}" apt-get update -qq
        apt_updated=yes
    fi
    step "installing $*"
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

# --- cargo --------------------------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1; then
    # rustup installs here; non-login shells (CI) often lack it on PATH.
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        die "cargo not found: install Rust (https://rustup.rs, Rust >= 1.80) and re-run"
    fi
fi

# --- Debian packages: Perl for the Sipwise client test; adduser and systemd (its
# systemd-analyze checks the unit) for the package test; Kamailio, sipp and the database
# clients for the SIP server tests; Python, whose standard library checks hook signatures
# independently of voxprov's own code, and its venv for the API fuzzer (schemathesis, from
# PyPI); Chromium and its driver for the web UI tests; HAProxy in front of the cluster
# tests' nodes and databases ---------------------------------------------------------------
missing=()
for pkg in perl libwww-perl libjson-perl kamailio kamailio-sqlite-modules \
           kamailio-mysql-modules sip-tester sqlite3 postgresql-client mariadb-client python3 \
           python3-venv curl adduser systemd \
           chromium chromium-driver haproxy; do
    installed "$pkg" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
# The failover test makes its own PostgreSQL primary and standby: the server's programs
# (initdb, pg_ctl, pg_basebackup), whatever serves the suite's database on 5432.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then apt_install postgresql; fi
# The package starts a Kamailio on port 5060 where systemd runs; the tests start their own.

# --- MariaDB on 127.0.0.1:3306 (root without a password over TCP) ---------------------------
my_up() { mysql -h 127.0.0.1 -P 3306 -uroot -e 'select 1' >/dev/null 2>&1; }
if ! my_up; then
    if ! (exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null; then
        installed mariadb-server || apt_install mariadb-server
        step "starting MariaDB"
        "${SUDO[@]}" mkdir -p /run/mysqld
        "${SUDO[@]}" chown mysql:mysql /run/mysqld 2>/dev/null || true
        "${SUDO[@]}" start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
        for _ in $(seq 1 30); do (exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null && break; sleep 1; done
    fi
    if ! my_up; then
        # A fresh install: root authenticates by unix socket only. Let the tests in over TCP.
        step "allowing root@127.0.0.1 without a password (test machine)"
        "${SUDO[@]}" mysql -uroot -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; FLUSH PRIVILEGES;"
    fi
    my_up || die "MariaDB does not let root in on 127.0.0.1:3306 without a password"
fi

# --- PostgreSQL on 127.0.0.1:5432 ------------------------------------------------------------
pg_up() {
    if command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
        return 0
    fi
    (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
}

pg_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1; }

if ! pg_up; then
    if ! installed postgresql || [ -z "$(pg_version)" ]; then
        apt_install postgresql
    fi
    ver="$(pg_version)"
    [ -n "$ver" ] || die "postgresql is installed but /etc/postgresql has no cluster version"
    if [ ! -d "/etc/postgresql/$ver/main" ]; then
        step "creating PostgreSQL $ver cluster main"
        "${SUDO[@]}" pg_createcluster "$ver" main >/dev/null
    fi
    # Let the test suite connect over TCP without a password (first matching line wins).
    hba="/etc/postgresql/$ver/main/pg_hba.conf"
    for net in 127.0.0.1/32 ::1/128; do
        line="host all all $net trust"
        if ! "${SUDO[@]}" grep -qxF "$line" "$hba"; then
            "${SUDO[@]}" sed -i "1i $line" "$hba"
        fi
    done
    if pg_up; then
        # Started by the package install: pick up the pg_hba change.
        "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
    else
        step "starting PostgreSQL $ver"
        "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$ver" main start
    fi
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
    pg_up || die "PostgreSQL does not answer on 127.0.0.1:5432"
fi

# --- which database user works -------------------------------------------------------------
if [ -z "${VOXPROV_TEST_POSTGRES_URL:-}" ]; then
    pg_user=postgres
    if command -v psql >/dev/null 2>&1; then
        pg_user=
        for u in postgres root; do
            if psql -qAt -h 127.0.0.1 -p 5432 -U "$u" -d test -c 'select 1' >/dev/null 2>&1; then
                pg_user=$u
                break
            fi
            # Fresh cluster: the role exists but the `test` database does not yet.
            if psql -qAt -h 127.0.0.1 -p 5432 -U "$u" -d postgres -c 'select 1' >/dev/null 2>&1; then
                step "creating database test"
                psql -qAt -h 127.0.0.1 -p 5432 -U "$u" -d postgres -c 'CREATE DATABASE test' >/dev/null
                pg_user=$u
                break
            fi
        done
        [ -n "$pg_user" ] || die "cannot connect to PostgreSQL on 127.0.0.1 as postgres or root without a password; set VOXPROV_TEST_POSTGRES_URL"
    fi
    VOXPROV_TEST_POSTGRES_URL="postgres://$pg_user@127.0.0.1:5432/test"
fi
export VOXPROV_TEST_POSTGRES_URL

# --- tests ---------------------------------------------------------------------------------
locked=()
if [ -f Cargo.lock ]; then locked=(--locked); fi
threads="${VOXPROV_TEST_THREADS:-4}"
# The layers point one way: nothing below the faces (http/, ui/) knows them or HTTP.
step "layering: no crate::http, crate::ui or axum below the faces"
below=$(grep -rln 'crate::http\|crate::ui\|axum' src/ | grep -v '^src/\(http\|ui\)/\|^src/lib.rs$\|^src/main.rs$' || true)
[ -z "$below" ] || die "modules below the faces use the HTTP layer: $below"
# Style and lints are part of the suite (STYLE.md: fmt, clippy -D warnings).
if cargo fmt --version >/dev/null 2>&1; then
    step "cargo fmt --check"
    cargo fmt --all -- --check
fi
if cargo clippy --version >/dev/null 2>&1; then
    step "cargo clippy -D warnings"
    cargo clippy --workspace --all-targets "${locked[@]}" -q -- -D warnings
fi
step "cargo test --workspace ${locked[*]} (PostgreSQL: $VOXPROV_TEST_POSTGRES_URL, $threads threads)"
status=0
# Each test server's log and every secret the tests created are collected here (tests/common)
# and checked after the run: JSON on every line, no secret anywhere.
rm -rf target/test-logs target/test-secrets
cargo test --workspace --no-fail-fast "${locked[@]}" -- --test-threads="$threads" || status=$?
step "the suite's server logs: JSON lines, no secret the tests created"
python3 scripts/check-logs.py target || status=1
# The Debian package, built (from the test build's binary, so nothing is compiled twice),
# installed with dpkg, run as its user with its unit's command line, walked through over
# HTTPS, removed and purged. Needs root (dpkg); skipped, and said so, without it.
if [ "$(id -u)" -eq 0 ]; then
    step "Debian package: build, install, run over HTTPS, remove"
    { PROFILE=dev bash scripts/package.sh && bash scripts/package-test.sh; } > target/package-test.log 2>&1 || {
        status=1
        tail -40 target/package-test.log
        echo "the package test failed: target/package-test.log" >&2
    }
    grep '^==> package' target/package-test.log || true
else
    echo "SKIPPED: the package test needs root (dpkg -i)" >&2
fi
# The API's description against the server it describes: every operation fuzzed on both
# databases, every answer checked against what the description declares (status, headers,
# media type, body schema) and every schema-violating request refused. Bounded to a few
# cases per operation here; scripts/fuzz.sh takes more for a longer run.
for backend in sqlite postgres; do
    step "fuzzing /api/openapi.json on $backend (${VOXPROV_FUZZ_EXAMPLES:-8} cases per operation)"
    FUZZ_ARGS="--exclude-checks positive_data_acceptance" \
        bash scripts/fuzz.sh target/debug/voxprov "$backend" "${VOXPROV_FUZZ_EXAMPLES:-8}" all \
        > "target/fuzz-$backend.log" 2>&1 || {
        status=1
        sed -n '/FAILURES/,$p' "target/fuzz-$backend.log" | head -80 || true
        echo "fuzzing on $backend failed: the whole report is in target/fuzz-$backend.log" >&2
    }
    sed -n '/^Test cases:/,/^Seed/p' "target/fuzz-$backend.log" | head -3 || true
done
exit "$status"

#!/usr/bin/env bash
# The Debian package, installed for real (root, dpkg): the user and directories it makes,
# its unit checked by systemd-analyze where it exists, the unit's ExecStart run as the
# package's user (no systemd in CI), the README's curl walk-through over HTTPS against it,
# then removal and purge. Run by scripts/test.sh after scripts/package.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { echo "==> package: $*"; }
die() { echo "package test failed: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (dpkg)"
deb=$(ls -1t target/debian/voxprov_*.deb 2>/dev/null | head -n 1 || true)
[ -n "$deb" ] || die "no package in target/debian: run scripts/package.sh first"
marker=/var/lib/voxprov/.voxprov-package-test
if dpkg-query -W voxprov >/dev/null 2>&1 || [ -d /var/lib/voxprov ]; then
    # Only a previous run of this test is cleared away, never an operator's installation.
    [ -e "$marker" ] || die "voxprov is installed here already (not by this test): not touching it"
    dpkg --purge voxprov >/dev/null 2>&1 || true
    rm -rf /var/lib/voxprov
fi

step "dpkg -i $deb"
dpkg -i "$deb" >/dev/null
getent passwd voxprov >/dev/null || die "no voxprov user"
touch "$marker"
[ "$(stat -c '%a %U' /var/lib/voxprov)" = "700 voxprov" ] || die "/var/lib/voxprov: $(stat -c '%a %U' /var/lib/voxprov)"
[ "$(stat -c '%a %U:%G' /etc/voxprov/voxprov.toml)" = "640 root:voxprov" ] || die "config: $(stat -c '%a %U:%G' /etc/voxprov/voxprov.toml)"
unit=/lib/systemd/system/voxprov.service
[ -f "$unit" ] || die "no unit"
for f in /usr/share/voxprov/kamailio/kamailio.cfg /usr/share/doc/voxprov/voxprov.toml.example; do
    [ -f "$f" ] || die "missing $f"
done
if command -v systemd-analyze >/dev/null 2>&1; then
    step "systemd-analyze verify"
    out=$(systemd-analyze verify "$unit" 2>&1) || die "systemd-analyze verify: $out"
    # Warnings about the unit itself (unknown settings, bad values) fail it too.
    if echo "$out" | grep -i 'voxprov.service' | grep -qiv 'network-online\|postgresql\|mariadb'; then
        die "systemd-analyze verify: $out"
    fi
fi

# The unit's own command line, as its user, with the packaged configuration.
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ "$exec_start" = "/usr/bin/voxprov serve --config /etc/voxprov/voxprov.toml" ] || die "ExecStart: $exec_start"
free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
env_ports=()
https_port=8443
if ! free 8443 || ! free 8080; then
    # Another service holds the packaged ports on this machine: move them, nothing else.
    https_port=18443
    env_ports=(VOXPROV_LISTEN=127.0.0.1:18080 VOXPROV_TLS_LISTEN=0.0.0.0:18443)
fi
password="pkg-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
log=$(mktemp)
step "starting '$exec_start' as voxprov"
(cd /var/lib/voxprov && umask 077 && exec runuser -u voxprov -- env VOXPROV_ADMIN_PASSWORD="$password" \
    "${env_ports[@]}" $exec_start) >"$log" 2>&1 &
server=$!
stop_server() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
# On any failure from here the test's installation goes too (not left enabled at boot).
cleanup() {
    stop_server
    rm -f "$log"
    dpkg --purge voxprov >/dev/null 2>&1 || true
    rm -rf /var/lib/voxprov
}
trap cleanup EXIT
for _ in $(seq 1 100); do
    grep -q "listening on https://" "$log" && break
    kill -0 "$server" 2>/dev/null || { cat "$log"; die "the server stopped"; }
    sleep 0.2
done
grep -q "listening on https://" "$log" || { cat "$log"; die "no HTTPS listener"; }
[ "$(stat -c '%U %a' /var/lib/voxprov/secret.key)" = "voxprov 600" ] || die "secret.key: $(stat -c '%U %a' /var/lib/voxprov/secret.key)"
[ "$(stat -c '%U' /var/lib/voxprov/voxprov.db)" = "voxprov" ] || die "database not the service user's"
ca=/var/lib/voxprov/tls/self-signed.crt
[ -f "$ca" ] || die "no generated certificate"

step "README walk-through over https://127.0.0.1:$https_port"
walk=$(mktemp)
{
    echo 'set -euo pipefail'
    echo "A='-sS --fail-with-body --cacert $ca -u administrator:$password'"
    echo "API=https://127.0.0.1:$https_port/api"
    # The README's block, without its own A= and API= lines.
    sed -n '/^## Five minutes with curl/,/^## /p' README.md | sed -n '/^```sh$/,/^```$/p' \
        | sed -e '/^```/d' -e '/^A=/d' -e '/^API=/d'
} >"$walk"
out=$(bash "$walk" 2>&1) || { echo "$out" | tail -20; rm -f "$walk"; die "walk-through failed"; }
rm -f "$walk"
grep -q '"username" *: *"alice"' <<<"$out" || die "the subscriber was not created: $out"
# The last step lists the subscriber's journal: created, patched, terminated.
grep -q '"total_count":3}$' <<<"${out: -300}" || die "the journal does not show the walk: $(echo "$out" | tail -c 300)"
# Plain HTTP beside it stays on the loopback, as packaged.
grep -q "listening on http://127.0.0.1:" "$log" || die "plain HTTP is not loopback-only: $(grep listening "$log")"
grep -q "$password" "$log" && die "the admin password is in the log"
stop_server
trap - EXIT
rm -f "$log"

step "dpkg --remove, --purge"
dpkg --remove voxprov >/dev/null
[ ! -e /usr/bin/voxprov ] || die "binary left after remove"
[ -f /etc/voxprov/voxprov.toml ] || die "remove must keep the configuration"
dpkg --purge voxprov >/dev/null 2>&1
[ ! -e /etc/voxprov ] || die "purge left /etc/voxprov"
[ ! -e "$unit" ] || die "purge left the unit"
[ -f /var/lib/voxprov/secret.key ] || die "purge must never delete the secret key"
# This test's own state goes now; an operator deletes theirs by hand.
rm -rf /var/lib/voxprov
deluser --system voxprov >/dev/null 2>&1 || userdel voxprov 2>/dev/null || true
step "ok"

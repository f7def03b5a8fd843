#!/bin/sh
# Create a Kamailio database with exactly the tables deploy/kamailio/kamailio.cfg
# needs, from the schema files the Debian packages install:
#   standard  -> version               (row per table, checked by modules at start)
#   auth_db   -> subscriber            (v7)
#   usrloc    -> location, location_attrs (v9, v1)
#   domain    -> domain, domain_attrs  (v2, v1)
#   alias_db  -> dbaliases             (v1)
#   avpops    -> usr_preferences       (v2)
#   lcr       -> lcr_gw, lcr_rule, lcr_rule_target (v3, v3, v1)
#   dispatcher -> dispatcher           (v4)
#   uac       -> uacreg                (v5)
#   permissions -> address, trusted    (v6, v6; the config loads only address,
#                trusted comes with the same schema file and stays empty)
#   dialplan  -> dialplan              (v2)
#   htable    -> htable                (v2)
#   userblocklist -> userblocklist, globalblocklist (v1, v1; the config reads
#                userblocklist itself, with avp_db_query: NCOS levels)
#   acc       -> acc, missed_calls, acc_cdrs (v5, v4, v2; acc_cdrs comes with
#                the schema file and stays empty), then the CDR columns of
#                the config's db_extra / time_mode 1 added to acc and
#                missed_calls (see ACC_COLUMNS below)
# and, written here (not a Kamailio schema file):
#   pbx_htable -> the htable 'pbx' (cloud PBX): htable's columns, with
#                key_name VARCHAR(255) and key_value VARCHAR(512) (v2)
#
# Usage:
#   create-db.sh [--force] sqlite /abs/path/kamailio.sqlite
#   create-db.sh [--force] mysql DBNAME [mysql client args...]
#       e.g. create-db.sh mysql kamailio -h 127.0.0.1 -u root
#
# Without --force the script refuses to touch an existing SQLite file or an
# existing MySQL database that already has a 'version' table. With --force the
# SQLite file (and its -wal/-shm) is deleted, or the MySQL database dropped,
# first.
#
# Environment:
#   KAMAILIO_SCHEMA_DIR  directory holding <db>/*-create.sql
#                        (default /usr/share/kamailio)
#   KAMAILIO_DB_CHARSET  MySQL database charset (default latin1, as kamdbctl)
#   KAMAILIO_USER        owner given to the SQLite file and its directory when
#                        run as root (default: kamailio, if that user exists)
#
# SQLite and file permissions: Kamailio writes the database (usrloc -> location)
# and, in WAL mode, creates <file>-wal and <file>-shm next to it. The kamailio
# process user therefore needs write access to the file AND to its directory,
# otherwise REGISTER fails with 500 ("attempt to write a readonly database").
# The provisioning server writing the same file needs the same rights (e.g. a
# shared group with g+rw on the file and g+rwx on the directory).
set -eu

SCHEMA_DIR=${KAMAILIO_SCHEMA_DIR:-/usr/share/kamailio}
MODULES="standard auth_db usrloc domain alias_db avpops lcr dispatcher uac permissions dialplan htable userblocklist acc"
TABLES="subscriber location location_attrs domain domain_attrs dbaliases usr_preferences
lcr_gw lcr_rule lcr_rule_target dispatcher uacreg address trusted dialplan htable
userblocklist globalblocklist acc missed_calls acc_cdrs pbx_htable"
TABLES=$(echo $TABLES)

# CDR columns beyond Kamailio's acc schema, in acc AND missed_calls; they must
# match the config's acc db_extra, time_attr and time_exten. The text columns
# allow NULL: db_sqlite writes an extra whose value is unset (e.g. $rU of a
# BYE to a Contact without user part) as NULL although acc_extra_nullable is
# 0, and a NOT NULL column would lose the whole row. Read NULL as ''.
ACC_COLUMNS="src_user VARCHAR(64) DEFAULT ''
src_domain VARCHAR(128) DEFAULT ''
dst_ouser VARCHAR(64) DEFAULT ''
dst_aor VARCHAR(255) DEFAULT ''
dst_user VARCHAR(64) DEFAULT ''
dst_domain VARCHAR(128) DEFAULT ''
src_ip VARCHAR(64) DEFAULT ''
start_ts VARCHAR(32) DEFAULT ''
trunk VARCHAR(64) DEFAULT ''
time_sec INTEGER DEFAULT 0 NOT NULL
time_usec INTEGER DEFAULT 0 NOT NULL"

# SQL (same text for SQLite and MySQL) run after the schema files
extra_sql() {
	# $1: the id column of pbx_htable for this engine
	echo "CREATE TABLE pbx_htable (
    id $1,
    key_name VARCHAR(255) DEFAULT '' NOT NULL,
    key_type INTEGER DEFAULT 0 NOT NULL,
    value_type INTEGER DEFAULT 0 NOT NULL,
    key_value VARCHAR(512) DEFAULT '' NOT NULL,
    expires INTEGER DEFAULT 0 NOT NULL
);"
	echo "INSERT INTO version (table_name, table_version) VALUES ('pbx_htable', 2);"
	for t in acc missed_calls; do
		echo "$ACC_COLUMNS" | while IFS= read -r col; do
			echo "ALTER TABLE $t ADD COLUMN $col;"
		done
	done
}

die() { echo "create-db.sh: $*" >&2; exit 1; }
usage() {
	sed -n '/^# Usage:/,/^#$/p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

FORCE=0
if [ "${1:-}" = "--force" ]; then FORCE=1; shift; fi
[ $# -ge 2 ] || usage
ENGINE=$1; shift

case $ENGINE in
sqlite)
	[ $# -eq 1 ] || usage
	DB=$1
	case $DB in /*) ;; *) die "the SQLite path must be absolute (the db_url is sqlite:// + path: four slashes)";; esac
	command -v sqlite3 >/dev/null || die "sqlite3 not found (apt-get install sqlite3)"
	DIR=$(dirname "$DB")
	for m in $MODULES; do
		[ -r "$SCHEMA_DIR/db_sqlite/$m-create.sql" ] || die "missing $SCHEMA_DIR/db_sqlite/$m-create.sql (apt-get install kamailio-sqlite-modules)"
	done
	if [ -e "$DB" ]; then
		[ $FORCE -eq 1 ] || die "$DB exists (use --force to recreate it)"
		rm -f "$DB" "$DB-wal" "$DB-shm" "$DB-journal"
	fi
	mkdir -p "$DIR"
	# one transaction: either all tables exist afterwards or none
	{
		echo "BEGIN;"
		for m in $MODULES; do cat "$SCHEMA_DIR/db_sqlite/$m-create.sql"; echo; done
		extra_sql "INTEGER PRIMARY KEY NOT NULL"
		echo "COMMIT;"
	} | sqlite3 -bail "$DB" || { rm -f "$DB"; die "schema load failed"; }
	# WAL is persistent in the file; Kamailio also sets it (db_set_journal_mode)
	sqlite3 "$DB" "PRAGMA journal_mode=WAL;" >/dev/null
	chmod 0660 "$DB"
	KUSER=${KAMAILIO_USER:-kamailio}
	if [ "$(id -u)" -eq 0 ] && id "$KUSER" >/dev/null 2>&1; then
		chown "$KUSER:$(id -gn "$KUSER")" "$DB"
		# the directory must be writable for the -wal/-shm files; only
		# change it when it is not a shared system directory
		case $DIR in /|/tmp|/var|/var/lib|/usr*|/etc*) ;; *) chown "$KUSER:$(id -gn "$KUSER")" "$DIR"; chmod 0770 "$DIR";; esac
	fi
	echo "created $DB (tables: version $TABLES)"
	;;
mysql)
	DBNAME=$1; shift
	case $DBNAME in *[!A-Za-z0-9_]*|"") die "bad database name '$DBNAME'";; esac
	command -v mysql >/dev/null || die "mysql client not found"
	for m in $MODULES; do
		[ -r "$SCHEMA_DIR/mysql/$m-create.sql" ] || die "missing $SCHEMA_DIR/mysql/$m-create.sql (apt-get install kamailio-mysql-modules)"
	done
	HAS=$(mysql "$@" -N -B -e "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema='$DBNAME' AND table_name='version'") \
		|| die "cannot connect to MySQL with: mysql $*"
	if [ "$HAS" != "0" ]; then
		[ $FORCE -eq 1 ] || die "database $DBNAME already has Kamailio tables (use --force to drop and recreate it)"
	fi
	if [ $FORCE -eq 1 ]; then
		mysql "$@" -e "DROP DATABASE IF EXISTS \`$DBNAME\`"
	fi
	# latin1 like kamdbctl (which refuses utf8*): Kamailio's composite indexes
	# (e.g. location username+domain+contact) exceed older MySQL key limits
	# with multi-byte charsets. Override with KAMAILIO_DB_CHARSET.
	mysql "$@" -e "CREATE DATABASE IF NOT EXISTS \`$DBNAME\` CHARACTER SET ${KAMAILIO_DB_CHARSET:-latin1}"
	for m in $MODULES; do
		mysql "$@" "$DBNAME" < "$SCHEMA_DIR/mysql/$m-create.sql" || die "loading $m-create.sql failed"
	done
	extra_sql "INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL" | mysql "$@" "$DBNAME" \
		|| die "creating pbx_htable / the acc columns failed"
	echo "created MySQL database $DBNAME (tables: version $TABLES)"
	;;
*)
	usage
	;;
esac

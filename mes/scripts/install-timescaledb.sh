#!/usr/bin/env bash
# Installs PostgreSQL with the TimescaleDB extension on Debian 12 or 13, as root.
# Debian 13 ships a binary package; Debian 12 has none, so Debian's own source package
# (Apache-2 edition) is built against PostgreSQL 15. Does nothing when both are present.
# Exit code 3 means "unsupported system": point MES_DATABASE_URL at a TimescaleDB instead.
set -euo pipefail

log() { printf 'install-timescaledb: %s\n' "$*" >&2; }

unsupported() {
  log "$1"
  log "Install PostgreSQL with TimescaleDB yourself (for example the official container image)"
  log "and set MES_DATABASE_URL=postgresql://USER:PASSWORD@HOST:PORT/DBNAME before 'mes db up'."
  exit 3
}

OS_RELEASE=${MES_OS_RELEASE_FILE:-/etc/os-release}
[ -r "$OS_RELEASE" ] || unsupported "cannot read $OS_RELEASE: not a Debian system"
# shellcheck disable=SC1091
. "$OS_RELEASE"
[ "${ID:-}" = debian ] || unsupported "this system is ${PRETTY_NAME:-unknown}, only Debian 12 and 13 are installed automatically"

case "${VERSION_ID:-}" in
  12) PG=15 ;;
  13) PG=17 ;;
  *) unsupported "Debian ${VERSION_ID:-unknown} is not supported, only Debian 12 and 13" ;;
esac

PG_BIN=/usr/lib/postgresql/$PG/bin
EXT_DIR=/usr/share/postgresql/$PG/extension

if [ -x "$PG_BIN/postgres" ] && [ -f "$EXT_DIR/timescaledb.control" ]; then
  log "PostgreSQL $PG with TimescaleDB already installed"
  exit 0
fi

[ "$(id -u)" = 0 ] || unsupported "installing PostgreSQL needs root; run as root or install it yourself"

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

log "updating package lists"
apt-get update -q >/dev/null

if [ "$PG" = 17 ]; then
  log "installing postgresql-17 and postgresql-17-timescaledb"
  apt-get install "${APT_OPTS[@]}" --no-install-recommends postgresql-17 postgresql-17-timescaledb >/dev/null
  exit 0
fi

log "installing PostgreSQL $PG and the build tools for TimescaleDB"
apt-get install "${APT_OPTS[@]}" --no-install-recommends \
  "postgresql-$PG" "postgresql-server-dev-$PG" cmake libssl-dev dpkg-dev gcc make >/dev/null

if [ -f "$EXT_DIR/timescaledb.control" ]; then
  exit 0
fi

# The system's own mirror, read from its sources, so nothing here names a host.
MIRROR=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$MIRROR" ] && [ -f /etc/apt/sources.list ]; then
  MIRROR=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)
fi
[ -n "$MIRROR" ] || unsupported "cannot find the Debian mirror in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"

WORK=$(mktemp -d /tmp/mes-timescaledb.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"
mkdir -p "$WORK/sources" "$WORK/lists/partial"
cat >"$WORK/sources/trixie-src.sources" <<EOF
Types: deb-src
URIs: $MIRROR
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
# A private apt configuration: the system's own sources stay as they are.
PRIVATE=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$WORK/sources" -o "Dir::State::Lists=$WORK/lists")

log "fetching Debian's timescaledb source package"
apt-get "${PRIVATE[@]}" update -q >/dev/null
(cd "$WORK" && apt-get "${PRIVATE[@]}" source -q timescaledb >/dev/null 2>&1)
SRC=$(find "$WORK" -mindepth 1 -maxdepth 1 -type d -name 'timescaledb-*' | head -n 1)
[ -n "$SRC" ] || { log "the timescaledb source package did not unpack"; exit 1; }

log "building $(basename "$SRC") against PostgreSQL $PG (Apache-2 edition)"
(
  cd "$SRC"
  ./bootstrap -DAPACHE_ONLY=ON -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF \
    "-DPG_CONFIG=$PG_BIN/pg_config" >"$WORK/bootstrap.log" 2>&1 || { cat "$WORK/bootstrap.log" >&2; exit 1; }
  make -C build -j"$(nproc)" install >"$WORK/build.log" 2>&1 || { tail -50 "$WORK/build.log" >&2; exit 1; }
)
[ -f "$EXT_DIR/timescaledb.control" ] || { log "build finished but timescaledb.control is missing"; exit 1; }
log "TimescaleDB installed into PostgreSQL $PG"

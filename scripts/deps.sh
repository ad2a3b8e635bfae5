#!/bin/sh
# Installs every Debian package that building, testing and running bbmaster
# needs. Idempotent: does nothing when they are all present.
set -eu
PKGS="meson ninja-build pkg-config gcc clang libclang-rt-14-dev clang-format
  libuv1-dev liblua5.4-dev libyaml-dev libjansson-dev libssl-dev libcmocka-dev
  libsqlite3-dev libpq-dev libmicrohttpd-dev libzstd-dev zlib1g-dev libbz2-dev
  liblz4-dev libbrotli-dev libpcre2-dev libexpat1-dev libcurl4-openssl-dev postgresql sqlite3
  python3 python3-pytest python3-pytest-xdist python3-psycopg2 python3-websocket python3-requests python3-aiosmtpd
  buildbot-worker
  buildbot procps wrk
  curl openssl faketime chromium chromium-driver python3-selenium ngircd"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing

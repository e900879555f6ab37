#!/bin/sh
# Installs the Debian packages the project needs, only those that are missing.
set -eu
# libwebsockets-evlib-uv + libuv1-dev: chatd runs lws on a libuv (epoll) loop
# chromium + chromium-driver + python3-selenium: the browser tests (web client)
PKGS="build-essential pkg-config libwebsockets-dev libwebsockets-evlib-uv libuv1-dev libsqlite3-dev libjansson-dev
libsodium-dev libcmocka-dev libncurses-dev sqlite3 tmux clang libclang-rt-14-dev openssl
gnuplot-nox postgresql libpq-dev haproxy chromium chromium-driver python3-selenium"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing

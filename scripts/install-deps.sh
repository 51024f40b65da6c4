#!/usr/bin/env bash
# Installs every build, test and benchmark dependency of Tandem from Debian 12's packages.
# Used by the README, .ci/run and deploy/Dockerfile. Safe to run more than once.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libuv1-dev libtomlplusplus-dev prometheus-cpp-dev default-libmysqlclient-dev
  libgtest-dev libgmock-dev libbenchmark-dev node-llhttp
  haproxy wrk socat curl procps clang-format php-cli
  mariadb-server mariadb-client sysbench
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

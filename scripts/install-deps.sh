#!/usr/bin/env bash
# Installs every build, test and benchmark dependency of Tandem from Debian 12's packages.
# Used by the README, .ci/run, scripts/demo.sh and deploy/Dockerfile. Safe to run more than once.
#
#   scripts/install-deps.sh               # everything: build, tests, benchmarks, demo
#   scripts/install-deps.sh --build-only  # only what compiling tandem needs (the image's
#                                         # build stage; configure with -DTANDEM_TESTS=OFF
#                                         # -DTANDEM_BENCH=OFF)
set -euo pipefail

build_packages=(
  build-essential cmake pkg-config
  libuv1-dev libtomlplusplus-dev prometheus-cpp-dev default-libmysqlclient-dev node-llhttp
)
other_packages=(
  git libgtest-dev libgmock-dev libbenchmark-dev
  haproxy wrk socat curl procps clang-format php-cli
  mariadb-server mariadb-client sysbench php-mysql
  prometheus chromium docker-compose
)

case ${1:-} in
  "") packages=("${build_packages[@]}" "${other_packages[@]}") ;;
  --build-only) packages=("${build_packages[@]}") ;;
  -h|--help) sed -n '2,8s/^# \{0,1\}//p' "$0"; exit 0 ;;
  *) echo "install-deps: unknown option $1 (see --help)" >&2; exit 2 ;;
esac

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

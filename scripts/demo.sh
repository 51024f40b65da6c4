#!/usr/bin/env bash
# The README's main command: installs what is needed, builds Tandem, starts two PHP web
# servers on loopback (web1 on 8091, web2 on 8092) and runs Tandem in front of them on
# 127.0.0.1:8090 with deploy/tandem-demo.toml. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target tandem

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "demo: stopped"
}
trap cleanup EXIT INT TERM

for i in 1 2; do
  WEB_NAME="web$i" php -S "127.0.0.1:809$i" -t deploy/app >/dev/null 2>&1 &
  pids+=($!)
done

build/tandem -c deploy/tandem-demo.toml &
pids+=($!)

cat <<MSG

demo: Tandem (HTTP mode, cookie persistence) balances http://127.0.0.1:8090/ over web1 (:8091) and web2 (:8092).
      Try:  curl -s http://127.0.0.1:8090/     (twice: both servers answer)
            kill ${pids[0]}                      (stops web1: Tandem logs it DOWN, web2 serves)
      Ctrl-C stops the demo.

MSG
wait "${pids[-1]}"

#!/usr/bin/env bash
# Installs what the run and test commands need when missing: etcd 3.5 (scripts/install-etcd.sh: Debian's packages, unpacked
# into .artifacts/tools/etcd), and from Debian's packages yamllint (chart checks), python3 (the Tiltfile's syntax
# check) and Node.js with npm (for the two npm packages below). Idempotent, and serialised with a lock so parallel callers never run apt-get at once.
# Also promtool (unpacked from Debian's prometheus package) and the local Cosmos-DB-compatible server (npm @zeit/cosmosdb-server; no Cosmos emulator image can be pulled here)
# into .artifacts/tools, for the failover tests and the DR drill.
# (helm comes from npm, fetched by the chart tests themselves: Debian has no helm.)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/retry.sh

COSMOS_SERVER_PACKAGE=@zeit/cosmosdb-server@0.13.4
cosmos_dir=.artifacts/tools/cosmosdb-server
NPM_ATTEMPTS=4            # whole-install attempts (scripts/retry.sh: 10 s, 20 s, 30 s apart)
NPM_TIMEOUT_SECONDS=300   # per attempt: npm never waits forever on a stalled registry
install_cosmos_server_once() {
  rm -rf "$staging" && mkdir -p "$staging"
  timeout "$NPM_TIMEOUT_SECONDS" npm install --no-audit --no-fund --omit=dev --prefix "$staging" \
    --fetch-retries=4 --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=20000 --fetch-timeout=60000 \
    "$COSMOS_SERVER_PACKAGE" >"$npm_log" 2>&1 && [ -x "$staging/node_modules/.bin/cosmosdb-server" ]
}
ensure_cosmos_server() {
  if [ -x "$cosmos_dir/node_modules/.bin/cosmosdb-server" ]; then return; fi
  exec 8>/tmp/daprpayments-cosmos-install.lock
  # parallel callers: one installs, the others wait and find it
  flock --timeout 900 8 || { echo "Another install held /tmp/daprpayments-cosmos-install.lock for 15 min; try again." >&2; exit 1; }
  if [ -x "$cosmos_dir/node_modules/.bin/cosmosdb-server" ]; then return; fi
  echo "==> Installing the local Cosmos DB-compatible server ($COSMOS_SERVER_PACKAGE) into $cosmos_dir…"
  # The registry can drop a connection mid-install (a CI run once failed here after 10 s with nothing said): npm retries
  # each fetch itself, the whole install is tried up to NPM_ATTEMPTS times, and the last attempt's log is printed if
  # all fail. It installs into a scratch folder that is renamed only when complete, so a broken install is never
  # mistaken for a finished one.
  staging="$cosmos_dir.partial"
  npm_log=$(mktemp)
  if ! retry "$NPM_ATTEMPTS" "npm install $COSMOS_SERVER_PACKAGE" install_cosmos_server_once; then
    echo "npm's last output:" >&2
    tail -n 40 "$npm_log" >&2
    rm -rf "$staging" "$npm_log"
    exit 1
  fi
  rm -rf "$cosmos_dir" && mv "$staging" "$cosmos_dir" && rm -f "$npm_log"
}

# promtool, from Debian's prometheus package (the chart's alert rules are checked with `promtool check rules` and
# `promtool test rules`): only the binary is unpacked into .artifacts/tools, so no Prometheus server is installed or
# started on the machine.
promtool_dir=.artifacts/tools/promtool
ensure_promtool() {
  if [ -x "$promtool_dir/promtool" ]; then return; fi
  exec 7>/tmp/daprpayments-promtool-install.lock
  flock --timeout 300 7
  if [ -x "$promtool_dir/promtool" ]; then return; fi
  echo "==> Unpacking promtool from Debian's prometheus package into $promtool_dir…"
  work=$(mktemp -d)
  # Retried and bounded like every download here (a dropped connection or a stale package list), with progress.
  download_prometheus_once() { apt-get download -q prometheus >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get download -q prometheus >/dev/null; }; }
  (cd "$work" && retry 3 "apt-get download prometheus" download_prometheus_once)
  dpkg-deb -x "$work"/prometheus_*.deb "$work/x"
  mkdir -p "$promtool_dir" && cp "$work/x/usr/bin/promtool" "$promtool_dir/promtool"
  rm -rf "$work"
}

have_all() { command -v yamllint >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; }
ensure_debian_packages() {
  if have_all; then return; fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "yamllint, python3 or npm is missing; run as root, or install them yourself." >&2
    exit 1
  fi
  exec 9>/tmp/daprpayments-apt-install.lock
  flock --timeout 300 9 || { echo "Another install held /tmp/daprpayments-apt-install.lock for 5 min; try again." >&2; exit 1; }
  if have_all; then exec 9>&-; return; fi
  export DEBIAN_FRONTEND=noninteractive
  packages=()
  command -v yamllint >/dev/null 2>&1 || packages+=(yamllint)
  command -v python3 >/dev/null 2>&1 || packages+=(python3-minimal)  # the Tiltfile's syntax check
  command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)           # helm and the local Cosmos DB-compatible server come from npm
  echo "==> Installing from Debian's packages: ${packages[*]}…"
  if ! apt-get install -y -q --no-install-recommends "${packages[@]}"; then
    echo "==> apt-get install failed; refreshing the package lists once and retrying…"
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${packages[@]}"
  fi
  exec 9>&- # released here: the npm install and the promtool download that follow are not apt's
}

scripts/install-etcd.sh
ensure_debian_packages
ensure_cosmos_server
ensure_promtool

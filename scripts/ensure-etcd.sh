#!/usr/bin/env bash
# Installs Debian's etcd (server + client) when it is missing. Idempotent, and serialised with a lock so
# that parallel callers (tests, the run command) never run apt-get twice at once.
set -euo pipefail

if command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "etcd is not installed; run as root, or install etcd 3.4+ yourself and set ETCD_BIN." >&2
  exit 1
fi

exec 9>/tmp/daprpayments-etcd-install.lock
flock --timeout 300 9
if [ -x /usr/bin/etcd ]; then
  exit 0
fi

echo "==> Installing etcd from Debian's packages (etcd-server, etcd-client)…"
export DEBIAN_FRONTEND=noninteractive
packages=(etcd-server etcd-client)
if ! apt-get install -y -q --no-install-recommends "${packages[@]}"; then
  echo "==> apt-get install failed; refreshing the package lists once and retrying…"
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${packages[@]}"
fi
etcd --version | head -1

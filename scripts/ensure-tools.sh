#!/usr/bin/env bash
# Installs what the run and test commands need from Debian's packages when missing: etcd (server + client),
# yamllint (chart checks) and python3 (the Tiltfile's syntax check). Idempotent, and serialised with a lock so parallel callers never run apt-get at once.
# (helm comes from npm, fetched by the chart tests themselves: Debian has no helm.)
set -euo pipefail

have_all() { [ -x /usr/bin/etcd ] && command -v yamllint >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1; }
if have_all; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "etcd or yamllint is missing; run as root, or install etcd 3.4+ (set ETCD_BIN) and yamllint yourself." >&2
  exit 1
fi

exec 9>/tmp/daprpayments-etcd-install.lock
flock --timeout 300 9
if have_all; then
  exit 0
fi

echo "==> Installing from Debian's packages: etcd-server, etcd-client, yamllint…"
export DEBIAN_FRONTEND=noninteractive
packages=(etcd-server etcd-client yamllint)
command -v python3 >/dev/null 2>&1 || packages+=(python3-minimal)  # the Tiltfile's syntax check
if ! apt-get install -y -q --no-install-recommends "${packages[@]}"; then
  echo "==> apt-get install failed; refreshing the package lists once and retrying…"
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${packages[@]}"
fi
etcd --version | head -1

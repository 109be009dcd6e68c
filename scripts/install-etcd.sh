#!/usr/bin/env bash
# etcd 3.5 (etcd, etcdctl, etcdutl) for the run and test commands, into .artifacts/tools/etcd: Debian's own
# etcd-server and etcd-client packages of trixie, fetched with apt-get (signatures checked against the machine's Debian
# archive keyring) and only unpacked, so the machine's packages are left as they are.
# Why not Debian 12's own etcd (3.4.23): 3.4 is out of support, and it copies its whole write buffer for every read
# and for every write transaction's compares: with the garbage collection it causes, ~45 % of the busiest member's CPU
# in the saga benchmark (docs/benchmarks.md, issue 14). 3.5 shares that copy between reads and skips it for writes. The container image (Dockerfile.etcd) installs the same packages.
# Idempotent, serialised with a lock (test processes may call it at once), bounded retries.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/retry.sh

ETCD_DEB_VERSION=3.5.16-4    # the version Dockerfile.etcd installs too
ETCD_SUITE=trixie
dir=.artifacts/tools/etcd

installed() { [ -x "$dir/etcd" ] && [ -x "$dir/etcdctl" ] && [ "$(cat "$dir/VERSION" 2>/dev/null)" = "$ETCD_DEB_VERSION" ]; }
installed && exit 0
exec 6>/tmp/daprpayments-etcd-tools.lock
flock --timeout 300 6   # parallel callers: one fetches, the others wait and find it
installed && exit 0

# The machine's Debian mirror (a bank's build machine has its own), else Debian's.
mirror=$( { grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v -- '-security' \
            ; grep -hoE '^deb +(\[[^]]*\] +)?[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{print $NF}' | grep -v -- '-security'; } \
          | head -1 || true)
mirror=${mirror:-http://deb.debian.org/debian}
echo "==> Fetching etcd $ETCD_DEB_VERSION (Debian $ETCD_SUITE's etcd-server and etcd-client, from $mirror) into $dir…"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $ETCD_SUITE main" > "$work/sources.list"
apt_options=(-q -o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$work/lists"
             -o "Dir::Cache=$work/cache" -o APT::Get::List-Cleanup=0 -o APT::Sandbox::User=root)
retry 3 "apt-get update ($ETCD_SUITE)" apt-get "${apt_options[@]}" update >/dev/null

# The pinned version; if the suite has moved on (a Debian point release replaces it), its current 3.5 release.
version=$ETCD_DEB_VERSION
if ! apt-cache "${apt_options[@]}" show "etcd-server=$version" >/dev/null 2>&1; then
  version=$(apt-cache "${apt_options[@]}" policy etcd-server | awk '/Candidate:/ {print $2}')
  case "$version" in
    3.5.*) echo "==> etcd $ETCD_DEB_VERSION is no longer in $ETCD_SUITE; taking its current $version" >&2 ;;
    *) echo "Debian $ETCD_SUITE has no etcd 3.5 (candidate: ${version:-none}); set ETCD_BIN to an etcd 3.5 binary." >&2; exit 1 ;;
  esac
fi
(cd "$work" && retry 3 "apt-get download etcd $version" apt-get "${apt_options[@]}" download "etcd-server=$version" "etcd-client=$version" >/dev/null)
for deb in "$work"/etcd-*.deb; do dpkg-deb -x "$deb" "$work/root"; done
rm -rf "$dir.partial" && mkdir -p "$dir.partial"
cp "$work/root/usr/bin/etcd" "$work/root/usr/bin/etcdctl" "$work/root/usr/bin/etcdutl" "$dir.partial/"
# sed reads to the end: `| head -1` closed the pipe early, and under pipefail etcd's SIGPIPE (141) failed the install.
"$dir.partial/etcd" --version | sed -n 1p
echo "$ETCD_DEB_VERSION" > "$dir.partial/VERSION"  # what was asked for: a fallback is not asked for again at every run
rm -rf "$dir" && mv "$dir.partial" "$dir"

#!/usr/bin/env bash
# The whole test suite: unit tests, integration tests against real local etcd clusters, and the container suite.
# Installs what a fresh machine lacks (etcd; the Docker engine and the seeded base images, through
# build-images.sh), builds, runs every test project, and ends with one line "N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
results=.artifacts/test-results
rm -rf "$results"

scripts/ensure-tools.sh
echo "==> Building (Release)…"
dotnet build DaprPayments.sln -c Release -nologo -v quiet

# The container suite runs the images of this very checkout: rebuilt every time (Docker's layer cache makes an
# unchanged tree a matter of seconds; a fresh machine installs Docker and seeds the base images first).
scripts/build-images.sh
export DOCKER_API_VERSION="${DOCKER_API_VERSION:-1.41}" TESTCONTAINERS_RYUK_DISABLED=true

echo "==> Testing…"
mkdir -p "$results"
set +e
# A test that hangs (a child process or a container that never answers) is stopped after 20 minutes and reported
# below, instead of holding CI until its 90-minute limit with nothing said; the longest test takes about 5.
dotnet test DaprPayments.sln -c Release --no-build -nologo \
  --blame-hang-timeout 20m --blame-hang-dump-type none \
  --logger "console;verbosity=normal" --results-directory "$results" 2>&1 | tee "$results/test.log"
status=${PIPESTATUS[0]}
set -e

# Each test project prints "Total tests: T" then "Passed: P", "Failed: F", "Skipped: S" (zero counts omitted):
# sum them into one closing line.
read -r passed failed skipped < <(awk '
  /^Total tests:/ {inside = 1; next}
  inside && /^ +Passed: / {p += $2}
  inside && /^ +Failed: / {f += $2}
  inside && /^ +Skipped: / {s += $2}
  /^ Total time:/ {inside = 0}
  END {print p + 0, f + 0, s + 0}' "$results/test.log")
if [ "$((passed + failed))" -eq 0 ]; then
  echo "No tests ran." >&2
  status=1
fi
# A run the hang blame stopped has no result for the test that hung: say so (and which test was running), and count
# it as a failure, or the closing line could read "0 failed".
aborted=$(grep -c -E 'test run was aborted|Test Run Aborted' "$results/test.log" || true)
if [ "$aborted" -gt 0 ]; then
  echo "==> Aborted test runs (a hung or crashed test host):"
  grep -E -B 2 -A 6 'inactivity time|test run was aborted|Test Run Aborted|were running|was running' "$results/test.log" | head -n 60 || true
  failed=$((failed + aborted))
  status=1
fi
# CI keeps only the tail of the output: name each failed test (and the first lines of its message) last.
if [ "$failed" -gt 0 ]; then
  echo "==> Failed tests:"
  grep -E -A 6 '^ +Failed [A-Za-z_.]+' "$results/test.log" | head -n 80 || true
fi
echo "$passed passed, $failed failed, $skipped skipped"
exit "$status"

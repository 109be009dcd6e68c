# Sourced by the install scripts. retry N WHAT COMMAND...: runs COMMAND up to N times, 10 s, 20 s, … apart, saying
# which attempt failed, because the registries and Debian's mirror sometimes drop a connection and one dropped
# connection must not fail a whole CI run. Returns the last attempt's status.
# Each attempt says every RETRY_HEARTBEAT_SECONDS (30) that it is still running — the commands it wraps (docker build
# -q, debootstrap, apt-get download) print nothing for minutes — and an attempt of an external command is stopped
# after RETRY_ATTEMPT_TIMEOUT (20m): a stalled connection must not hold CI until its own limit.
retry() {
  local attempts=$1 what=$2 attempt status=0 beat
  shift 2
  for attempt in $(seq 1 "$attempts"); do
    (
      parent=$$ started=$SECONDS
      while sleep "${RETRY_HEARTBEAT_SECONDS:-30}" && kill -0 "$parent" 2>/dev/null; do
        echo "    … $what: still running ($((SECONDS - started)) s)" >&2
      done
    ) &
    beat=$!
    if [ "$(type -t "$1")" = function ]; then
      "$@" && status=0 || status=$? # a function of the script: bounded by what it runs
    else
      timeout --kill-after=30s "${RETRY_ATTEMPT_TIMEOUT:-20m}" "$@" && status=0 || status=$?
    fi
    kill "$beat" 2>/dev/null || true
    wait "$beat" 2>/dev/null || true
    [ "$status" -eq 0 ] && return 0
    if [ "$attempt" -lt "$attempts" ]; then
      echo "==> $what failed (attempt $attempt of $attempts, exit $status); trying again in $((attempt * 10)) s…" >&2
      sleep $((attempt * 10))
    fi
  done
  echo "==> $what failed $attempts times (exit $status)." >&2
  return "$status"
}

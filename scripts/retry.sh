# Sourced by the install scripts. retry N WHAT COMMAND...: runs COMMAND up to N times, 10 s, 20 s, … apart, saying
# which attempt failed, because the registries and Debian's mirror sometimes drop a connection and one dropped
# connection must not fail a whole CI run. Returns the last attempt's status.
retry() {
  local attempts=$1 what=$2 attempt status=0
  shift 2
  for attempt in $(seq 1 "$attempts"); do
    "$@" && return 0
    status=$?
    if [ "$attempt" -lt "$attempts" ]; then
      echo "==> $what failed (attempt $attempt of $attempts, exit $status); trying again in $((attempt * 10)) s…" >&2
      sleep $((attempt * 10))
    fi
  done
  echo "==> $what failed $attempts times (exit $status)." >&2
  return "$status"
}

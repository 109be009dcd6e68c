#!/usr/bin/env bash
# Creates the kind cluster(s) for local development: region a, or both with --both. Tilt then installs Dapr and
# deploys the chart (tilt up). Needs kind, kubectl, helm and a Docker engine on the developer's machine.
set -euo pipefail
cd "$(dirname "$0")/.."
regions=(a)
[ "${1:-}" = "--both" ] && regions=(a b)
for region in "${regions[@]}"; do
  if kind get clusters | grep -x "daprpayments-$region" >/dev/null; then   # not grep -q: its early exit is a SIGPIPE under pipefail
    echo "kind cluster daprpayments-$region exists"
  else
    kind create cluster --config "tilt/kind-region-$region.yaml"
  fi
done
echo "Next: DAPRPAYMENTS_REGION=a tilt up --context kind-daprpayments-a"

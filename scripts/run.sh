#!/usr/bin/env bash
# The main job on the embedded local default: starts a throw-away 3-member etcd cluster on 127.0.0.1,
# runs the payment demo on the ledger, prints the summary and the invariant checks, and cleans up.
# Extra arguments go to the demo (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
# --help needs only the program, not etcd, the Docker engine or the other tools.
wants_help=false
for arg in "$@"; do
  case "$arg" in -h|--help) wants_help=true ;; esac
done
if [ "$wants_help" = false ]; then scripts/ensure-tools.sh; fi
echo "==> Building (Release)…"
dotnet build apps/Payments.Local -c Release -nologo -v quiet
# exec the program itself (not `dotnet run`), so Ctrl-C and SIGTERM reach it and it can stop every child process.
exec dotnet apps/Payments.Local/bin/Release/net10.0/Payments.Local.dll "$@"

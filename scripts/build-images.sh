#!/usr/bin/env bash
# Builds every DaprPayments image: the apps (one Dockerfile, APP as a build argument: API, orchestrator, ledger, risk, failover,
# the development workflow sidecar and the edge load balancer) and etcd.
# Online, the Dockerfiles' defaults (Microsoft's .NET images, debian:bookworm-slim) are pulled as usual.
# Offline (air-gapped build machines, common at banks; also this project's CI), base images are seeded without any
# registry: a Debian root filesystem from debootstrap (Debian's mirror only), plus this machine's .NET for the SDK
# and runtime images. Use --offline to force seeding; otherwise it is chosen when the official images cannot be pulled.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/retry.sh
TAG="${TAG:-0.1.0}"
PREFIX=daprpayments
APPS=(Payments.Api:api Payments.Orchestrator.Host:orchestrator Payments.Ledger:ledger Payments.Risk:risk Payments.Failover:failover
      Payments.WorkflowSidecar:workflow-sidecar Payments.Edge:edge)
OFFLINE="${1:-}"
SEED_VERSION=3 # of the seeded .NET images: 2 adds Microsoft's "app" user; 3 keeps this machine's CAs out of the runtime
export DOCKER_API_VERSION="${DOCKER_API_VERSION:-1.41}"

ensure_docker() {
  if ! command -v dockerd >/dev/null 2>&1; then
    echo "==> Installing Docker (Debian's docker.io)…"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io \
      || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io; }
  fi
  if docker info >/dev/null 2>&1; then return; fi
  (
    flock --timeout 60 9
    if ! docker info >/dev/null 2>&1; then
      echo "==> Starting dockerd…"
      # Not inheriting the lock's descriptor: dockerd outlives this script.
      nohup setsid /usr/sbin/dockerd >>/var/log/dockerd.log 2>&1 </dev/null 9>&- &
    fi
  ) 9>/tmp/daprpayments-dockerd.lock
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && return; sleep 0.5; done
  echo "dockerd did not start; see /var/log/dockerd.log" >&2; exit 1
}

# One debootstrap into an emptied folder: a mirror that drops a connection leaves a half-made root behind.
debootstrap_once() {
  find "$1" -mindepth 1 -delete
  debootstrap --variant=minbase bookworm "$1" "$2" >/dev/null
}

seed_base_images() {
  if ! docker image inspect "$PREFIX/base:bookworm" >/dev/null 2>&1; then
    echo "==> Seeding $PREFIX/base:bookworm with debootstrap (about 90 s)…"
    command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
    root=$(mktemp -d)
    mirror=$(grep -hoE '^deb [^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -1 | cut -d' ' -f2 || true)
    retry 3 debootstrap debootstrap_once "$root" "${mirror:-http://deb.debian.org/debian}"
    cp /etc/apt/sources.list "$root/etc/apt/sources.list" 2>/dev/null || true
    cp -r /etc/apt/sources.list.d/. "$root/etc/apt/sources.list.d/" 2>/dev/null || true
    rm -rf "$root"/usr/share/doc/* "$root"/usr/share/locale/* "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | docker import - "$PREFIX/base:bookworm" >/dev/null
    rm -rf "$root"
  fi
  for kind in sdk aspnet; do
    # The seed's version as a label: a machine holding an older seed makes it again.
    if [ "$(docker image inspect -f '{{index .Config.Labels "daprpayments.seed"}}' "$PREFIX/dotnet-$kind:10.0" 2>/dev/null)" = "$SEED_VERSION" ]; then continue; fi
    echo "==> Seeding $PREFIX/dotnet-$kind:10.0 from this machine's .NET…"
    context=$(mktemp -d)
    if [ "$kind" = sdk ]; then cp -a /usr/share/dotnet "$context/dotnet"; else
      mkdir -p "$context/dotnet" && cp -a /usr/share/dotnet/dotnet /usr/share/dotnet/host /usr/share/dotnet/shared "$context/dotnet/"; fi
    # The SDK trusts what this machine trusts: behind a corporate TLS proxy, NuGet restore inside the build needs its
    # CA. The runtime does not: the apps' own connections (Cosmos DB, Entra ID, webhook receivers) would trust a
    # TLS-inspecting proxy's CA in production (a chart review).
    mkdir -p "$context/ca"
    if [ "$kind" = sdk ]; then cp -a /usr/local/share/ca-certificates/. "$context/ca/" 2>/dev/null || true; fi
    cat > "$context/Dockerfile" <<'DOCKERFILE'
FROM daprpayments/base:bookworm
RUN apt-get update -q && apt-get install -y -q --no-install-recommends libicu72 libssl3 ca-certificates && rm -rf /var/lib/apt/lists/*
COPY ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null
COPY dotnet /usr/share/dotnet
RUN ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet
# As Microsoft's .NET images have it (user and group "app", 1654): our Dockerfile must build on those too.
RUN groupadd --gid=1654 app && useradd --uid=1654 --gid=1654 --no-create-home --shell /bin/false app
ENV DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 NUGET_CERT_REVOCATION_MODE=offline APP_UID=1654
DOCKERFILE
    retry 3 "docker build $PREFIX/dotnet-$kind:10.0" docker build -q --label "daprpayments.seed=$SEED_VERSION" -t "$PREFIX/dotnet-$kind:10.0" "$context" >/dev/null
    rm -rf "$context"
  done
}

ensure_docker
build_args=()
etcd_args=()
if [ "$OFFLINE" = "--offline" ] || ! docker pull -q mcr.microsoft.com/dotnet/aspnet:10.0 >/dev/null 2>&1; then
  seed_base_images
  build_args=(--build-arg "SDK_IMAGE=$PREFIX/dotnet-sdk:10.0" --build-arg "RUNTIME_IMAGE=$PREFIX/dotnet-aspnet:10.0")
  etcd_args=(--build-arg "BASE_IMAGE=$PREFIX/base:bookworm")
fi

for entry in "${APPS[@]}"; do
  project="${entry%%:*}"; image="${entry##*:}"
  echo "==> Building $PREFIX/$image:$TAG ($project)…"
  retry 3 "docker build $PREFIX/$image:$TAG" docker build -q "${build_args[@]}" --build-arg "APP=$project" -t "$PREFIX/$image:$TAG" -f Dockerfile . >/dev/null
done
echo "==> Building $PREFIX/etcd:3.5.16…"
retry 3 "docker build $PREFIX/etcd:3.5.16" docker build -q "${etcd_args[@]}" -t "$PREFIX/etcd:3.5.16" -f Dockerfile.etcd . >/dev/null
docker images --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep "^$PREFIX/"

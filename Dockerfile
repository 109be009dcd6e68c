# One Dockerfile for every DaprPayments app (docker build --build-arg APP=Payments.Api …): the apps share a layout,
# so one recipe keeps them identical where it matters (non-root user, read-only-root-friendly, health check).
# Base images are build arguments: online builds use Microsoft's images; offline (air-gapped) builds use the images
# that scripts/build-images.sh seeds from Debian's packages and this machine's .NET.
ARG SDK_IMAGE=mcr.microsoft.com/dotnet/sdk:10.0
ARG RUNTIME_IMAGE=mcr.microsoft.com/dotnet/aspnet:10.0

FROM ${SDK_IMAGE} AS build
WORKDIR /src
# Only what the apps are built from: a change to tests, charts or docs leaves this stage cached.
COPY Directory.Build.props Directory.Packages.props global.json .editorconfig ./
COPY apps/ apps/
# Every app in one stage, before APP is declared: the images share this one build (restore and compile the shared
# libraries once) instead of repeating it per app.
RUN set -e; for app in Payments.Api Payments.Orchestrator.Host Payments.Ledger Payments.Risk Payments.Failover Payments.WorkflowSidecar Payments.Edge; do \
      dotnet publish "apps/$app/$app.csproj" -c Release -o "/out/$app" --nologo -p:UseAppHost=false; \
    done
ARG APP
RUN test -n "$APP" && test -d "/out/$APP" || (echo "--build-arg APP=<one of the apps published above> is required" >&2; exit 1)

FROM ${RUNTIME_IMAGE} AS runtime
ARG APP
ARG PORT=8080
WORKDIR /app
COPY --from=build /out/${APP} .
# By number, under its own name: Microsoft's images already have a user and group "app" (uid and gid 1654), so a
# check by name skipped the group 10001 and useradd then failed on it (only the offline base, without "app", built).
RUN ln -s "/app/${APP}.dll" /app/entry.dll && (getent group 10001 || groupadd --gid 10001 payments) \
    && (getent passwd 10001 || useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin payments)
# Non-root, and nothing written outside /tmp (mounted as an emptyDir under a read-only root).
USER 10001:10001
ENV ASPNETCORE_URLS=http://+:${PORT} \
    DOTNET_gcServer=1 \
    DOTNET_EnableDiagnostics=0 \
    TMPDIR=/tmp
EXPOSE ${PORT}
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${ASPNETCORE_URLS##*:} && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && head -1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["dotnet", "/app/entry.dll"]

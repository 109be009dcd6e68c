# One Dockerfile for every DaprPayments app (docker build --build-arg APP=Payments.Api …): the apps share a layout,
# so one recipe keeps them identical where it matters (non-root user, read-only-root-friendly, health check).
# Base images are build arguments: online builds use Microsoft's images; offline (air-gapped) builds use the images
# that scripts/build-images.sh seeds from Debian's packages and this machine's .NET.
ARG SDK_IMAGE=mcr.microsoft.com/dotnet/sdk:10.0
ARG RUNTIME_IMAGE=mcr.microsoft.com/dotnet/aspnet:10.0

FROM ${SDK_IMAGE} AS build
ARG APP
WORKDIR /src
COPY . .
RUN test -n "$APP" || (echo "--build-arg APP=<project name> is required" >&2; exit 1)
RUN dotnet publish "apps/${APP}/${APP}.csproj" -c Release -o /out --nologo -p:UseAppHost=false

FROM ${RUNTIME_IMAGE} AS runtime
ARG APP
ARG PORT=8080
WORKDIR /app
COPY --from=build /out .
RUN ln -s "/app/${APP}.dll" /app/entry.dll && (getent group app || groupadd --gid 10001 app) \
    && (getent passwd 10001 || useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin app)
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

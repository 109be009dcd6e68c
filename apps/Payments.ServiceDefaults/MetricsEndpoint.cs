using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Payments.Domain;
using Payments.ServiceDefaults.Security;

namespace Payments.ServiceDefaults;

/// <summary>Prometheus's <c>/metrics</c> (OpenTelemetry's Prometheus exporter: every instrument of the platform's
/// meter, ASP.NET Core's, HttpClient's and the runtime's), for the scraper only. The scraper presents a bearer token
/// (<c>Metrics:Token</c>, and <c>Metrics:NextToken</c> while it is rotated); without a configured token the endpoint
/// answers 404. With <c>Metrics:Port</c> (the chart's 9464) it is served on that port alone, and that port serves
/// nothing else — so a NetworkPolicy can open it to the monitoring namespace without opening the app.</summary>
public static class MetricsEndpoint
{
    public const string Path = "/metrics";
    public const string Section = "Metrics";

    /// <summary>Guards the metrics port and path ahead of every other middleware (a startup filter runs first).</summary>
    internal static void AddMetricsGuard(this IServiceCollection services, IConfiguration configuration)
    {
        var credential = OperatorCredential.From(configuration, Section);
        var port = configuration.GetValue<int?>($"{Section}:Port");
        services.AddSingleton<IStartupFilter>(provider => new Guard(credential, port, provider.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(MetricsEndpoint).FullName!)));
    }

    /// <summary>Maps the scrape endpoint; the guard added by ServiceDefaults authenticates it. A host built without
    /// ServiceDefaults (in-process test hosts) has no meter provider and so no metrics to serve: nothing is mapped.</summary>
    public static void MapMetricsEndpoint(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        if (app.Services.GetService<OpenTelemetry.Metrics.MeterProvider>() is null)
        {
            return;
        }

        app.MapPrometheusScrapingEndpoint(Path).AllowWithoutIdentity();
    }

    private sealed class Guard(OperatorCredential? credential, int? port, ILogger logger) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(async (context, nextMiddleware) =>
            {
                var onMetricsPort = port is not null && context.Connection.LocalPort == port;
                // As routing matches it: in any case, with a trailing slash or more segments. An exact comparison let
                // /Metrics and /metrics/ through to the endpoint unguarded.
                var isMetrics = context.Request.Path.StartsWithSegments(Path, StringComparison.OrdinalIgnoreCase);
                if (isMetrics || onMetricsPort)
                {
                    // Answered here, ahead of the app's own middleware that sets these on every other answer.
                    context.Response.Headers.CacheControl = "no-store";
                    context.Response.Headers.XContentTypeOptions = "nosniff";
                }

                if (onMetricsPort != isMetrics && port is not null)
                {
                    await NotFound().ExecuteAsync(context); // the metrics port serves only /metrics, and /metrics only there
                    return;
                }

                if (isMetrics && credential?.Authenticate(context.Request.Headers.Authorization.ToString()) is null)
                {
                    if (credential is null)
                    {
                        await NotFound().ExecuteAsync(context);
                        return;
                    }

                    LogRefused(context.Connection.RemoteIpAddress);
                    context.Response.Headers.WWWAuthenticate = "Bearer";
                    await Results.Problem("Metrics are for the scraper: Authorization: Bearer <token>.",
                        statusCode: StatusCodes.Status401Unauthorized, title: "Valid credentials are required.", type: ProblemTypes.Unauthorized).ExecuteAsync(context);
                    return;
                }

                await nextMiddleware(context);
            });
            next(app);
        };

        /// <summary>A refused scrape is logged at most once a minute (<see cref="RefusalLog"/>).</summary>
        private void LogRefused(System.Net.IPAddress? remote)
        {
            if (refusals.ShouldLog(out var refused))
            {
                logger.LogWarning("Metrics scrape refused from {Remote}: no valid scrape token ({Refused} refused since the last such line)", remote, refused);
            }
        }

        private readonly Security.RefusalLog refusals = new();

        private static IResult NotFound() =>
            Results.Problem(title: "Not found.", statusCode: StatusCodes.Status404NotFound, type: ProblemTypes.NotFound); // the title every not-found answer has (a probe: the detail had it)
    }
}

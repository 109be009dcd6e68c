using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Payments.Telemetry;

namespace Payments.ServiceDefaults;

public static class ServiceDefaultsExtensions
{
    /// <summary>Traces (ASP.NET Core, HttpClient, the platform's own spans: API → workflow activities → ledger),
    /// metrics (the same, plus runtime), and structured logs. Exporter: OTLP when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c>
    /// is set (sampled as <c>OTEL_TRACES_SAMPLER</c> says; the chart sets a parent-based ratio); otherwise
    /// <c>Telemetry:Exporter</c> = <c>console</c> (the default, for a developer's terminal) or <c>none</c> (what the
    /// chart sets without a collector: spans are still built, not printed). Metrics are served to Prometheus on
    /// <c>/metrics</c> either way (<see cref="MetricsEndpoint"/>).</summary>
    public static IHostApplicationBuilder AddServiceDefaults(this IHostApplicationBuilder builder, string serviceName)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Logging.AddSimpleConsole(console => console.SingleLine = true);
        var otlp = !string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]);
        var console = !otlp && !string.Equals(builder.Configuration["Telemetry:Exporter"], "none", StringComparison.OrdinalIgnoreCase);
        // Tracing stays registered with no exporter: its listener is what carries a request's trace context across the
        // apps' own calls (a test checks the trace from the API into the ledger's transaction).
        // Trace context is extracted once, by ASP.NET Core's hosting, with the propagator in each host's container
        // (OutsideTraceContext replaces it at the public entrance). OpenTelemetry's default (trace context and baggage)
        // made its ASP.NET Core instrumentation extract the headers a second time and replace the request's activity
        // with one under what it found, whatever the host's propagator had decided.
        Sdk.SetDefaultTextMapPropagator(new OpenTelemetry.Context.Propagation.TraceContextPropagator());
        var telemetry = builder.Services.AddOpenTelemetry().ConfigureResource(resource => resource.AddService(serviceName));
        telemetry.WithTracing(tracing =>
        {
            tracing.AddSource(PaymentsTelemetry.Name).AddAspNetCoreInstrumentation().AddHttpClientInstrumentation();
            if (console)
            {
                tracing.AddConsoleExporter();
            }
        });
        telemetry.WithMetrics(metrics =>
        {
            metrics.AddMeter(PaymentsTelemetry.Name).AddAspNetCoreInstrumentation().AddHttpClientInstrumentation().AddRuntimeInstrumentation()
                .AddPrometheusExporter();
            if (console)
            {
                metrics.AddConsoleExporter((_, reader) => reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = 60_000);
            }
        });
        if (otlp)
        {
            telemetry.UseOtlpExporter();
        }

        builder.Services.AddMetricsGuard(builder.Configuration);
        return builder;
    }
}

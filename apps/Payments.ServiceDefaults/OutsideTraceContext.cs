using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Payments.ServiceDefaults;

/// <summary>At the platform's public entrance (the API; the edge locally), a request's trace starts here: the
/// <c>traceparent</c>, <c>tracestate</c> and <c>baggage</c> a caller from outside sends are not taken up.</summary>
/// <remarks>Taken up, a caller chose the trace id every span of its payment carries (the saga's steps and the ledger's
/// transactions included: the API hands its trace to the saga), could make it collide with another's, set the sampled
/// flag that decides export under the chart's parent-based sampler (a flood of exported traces at will), and put
/// baggage into every internal call. The OpenTelemetry specification's advice for a trust boundary is to start a new
/// trace. Set <c>Telemetry:TrustInboundTraceContext</c> only where every caller is the platform's own (the local edge's
/// API replicas), or behind an entrance that replaces the header itself.</remarks>
public static class OutsideTraceContext
{
    public const string TrustSetting = "Telemetry:TrustInboundTraceContext";

    /// <summary>Makes ASP.NET Core's request activity ignore inbound trace context in this host, unless
    /// <see cref="TrustSetting"/> is true. Outbound calls still carry this host's own context: the runtime's
    /// <see cref="HttpClient"/> injects through <see cref="DistributedContextPropagator.Current"/>, which this leaves
    /// alone.</summary>
    public static IHostApplicationBuilder IgnoreTraceContextFromOutside(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (!string.Equals(builder.Configuration[TrustSetting], "true", StringComparison.OrdinalIgnoreCase))
        {
            // ASP.NET Core's hosting takes the propagator it extracts with from the container.
            builder.Services.AddSingleton<DistributedContextPropagator>(new ExtractNothing(DistributedContextPropagator.CreateDefaultPropagator()));
        }

        return builder;
    }

    /// <summary>Injects as the default propagator does; extracts nothing.</summary>
    private sealed class ExtractNothing(DistributedContextPropagator inner) : DistributedContextPropagator
    {
        public override IReadOnlyCollection<string> Fields => inner.Fields;

        public override void Inject(Activity? activity, object? carrier, PropagatorSetterCallback? setter) => inner.Inject(activity, carrier, setter);

        public override void ExtractTraceIdAndState(object? carrier, PropagatorGetterCallback? getter, out string? traceId, out string? traceState)
        {
            traceId = null;
            traceState = null;
        }

        public override IEnumerable<KeyValuePair<string, string?>>? ExtractBaggage(object? carrier, PropagatorGetterCallback? getter) => null;
    }
}

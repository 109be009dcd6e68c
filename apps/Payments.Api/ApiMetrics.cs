using System.Diagnostics.Metrics;
using Payments.Telemetry;

namespace Payments.Api;

/// <summary>The API's instruments.</summary>
internal static class ApiMetrics
{
    public static readonly Counter<long> PaymentsAccepted = PaymentsTelemetry.Meter.CreateCounter<long>(
        "payments.accepted", description: "payments accepted by the API");
}

using System.Diagnostics.Metrics;
using Payments.Telemetry;

namespace Payments.Api;

/// <summary>The API's instruments.</summary>
internal static class ApiMetrics
{
    public static readonly Counter<long> PaymentsAccepted = PaymentsTelemetry.Meter.CreateCounter<long>(
        "payments.accepted", description: "payments accepted by the API");

    /// <summary>Payments that reached a terminal status, by status (counted once, when the API records it).</summary>
    public static readonly Counter<long> PaymentsTerminal = PaymentsTelemetry.Meter.CreateCounter<long>(
        "payments.terminal", description: "payments by terminal status");
}

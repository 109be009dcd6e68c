using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Payments.Telemetry;

/// <summary>The one trace source and meter of the platform. Each library declares its own instruments on
/// <see cref="Meter"/> (the ledger its conflicts, the saga its step durations, replication its lag) beside the code
/// that records them; the hosts export everything named <see cref="Name"/> (ServiceDefaults).</summary>
public static class PaymentsTelemetry
{
    public const string Name = "Payments";

    public static readonly ActivitySource Source = new(Name);

    public static readonly Meter Meter = new(Name);
}

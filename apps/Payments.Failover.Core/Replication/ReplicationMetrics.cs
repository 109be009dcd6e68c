using Payments.Telemetry;

namespace Payments.Failover.Core.Replication;

/// <summary>Replication's instruments.</summary>
public static class ReplicationMetrics
{
    /// <summary>Observes how far journal shipping to Cosmos DB lags (age of the oldest unshipped entry, ms).</summary>
    public static void ObserveLag(Func<long> lagMilliseconds) =>
        PaymentsTelemetry.Meter.CreateObservableGauge(
            "payments.replication.lag", lagMilliseconds, unit: "ms", description: "age of the oldest journal entry not yet shipped to Cosmos DB");
}

using Payments.Telemetry;

namespace Payments.Failover.Core.Replication;

/// <summary>Replication's instruments.</summary>
public static class ReplicationMetrics
{
    private static readonly System.Diagnostics.Metrics.Counter<long> Refused = PaymentsTelemetry.Meter.CreateCounter<long>(
        "payments.replication.records_refused", description: "records in the peer's journal pages outside the families a region ships, not applied");

    /// <summary>Counts a record of the peer's pages that was not applied (<see cref="JournalReplicator"/>).</summary>
    public static void CountRefused() => Refused.Add(1);

    /// <summary>Observes how far journal shipping to Cosmos DB lags (age of the oldest unshipped entry, or how long
    /// shipping has been failing, ms).</summary>
    public static void ObserveLag(Func<long> lagMilliseconds) =>
        PaymentsTelemetry.Meter.CreateObservableGauge(
            "payments.replication.lag", lagMilliseconds, unit: "ms", description: "age of the oldest journal entry not yet shipped to Cosmos DB, or how long shipping has been failing");
}

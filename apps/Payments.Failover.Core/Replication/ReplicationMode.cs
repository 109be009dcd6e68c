namespace Payments.Failover.Core.Replication;

/// <summary>How a region's ledger writes reach the other region.</summary>
public enum ReplicationMode
{
    /// <summary>Single region: nothing ships.</summary>
    Off,

    /// <summary>A write is acknowledged only once its journal entries are in Cosmos DB: RPO 0 for every acknowledged payment.</summary>
    Sync,

    /// <summary>Shipped in the background; the lag is the metric <c>payments.replication.lag</c>.</summary>
    Async,
}

namespace Payments.Etcd;

/// <summary>Which etcd keys each app may touch: one etcd role (and user, the common name of the app's client
/// certificate) per app, limited to the key families under <see cref="EtcdOptions.KeyPrefix"/> it reads or writes.
/// The local system, the container suite and the chart's bootstrap Job all grant exactly this table (a deployment test
/// compares the chart's grants with it).</summary>
public static class EtcdRoles
{
    public const string Ledger = "ledger";
    public const string Api = "api";
    public const string Orchestrator = "orchestrator";
    public const string Failover = "failover";

    /// <summary>The orchestrator's Dapr sidecar: the etcd state store keeps workflow and actor state under
    /// <see cref="StateStoreFamily"/>.</summary>
    public const string StateStore = "statestore";

    /// <summary>The Dapr state store's <c>keyPrefixPath</c>, relative to the key prefix.</summary>
    public const string StateStoreFamily = "dapr";

    /// <summary>The roles for the layout under <paramref name="keyPrefix"/>. Why each family:
    /// the ledger writes its own keys (journal, accounts, holds, its sweeper and archiver locks), reads the region
    /// epoch (its writes compare it) and reads the records it ships beside the journal (the webhook endpoints with their
    /// signing secrets among them, not the outbox nor the deliveries owed), and the failover service's mark
    /// on the ones it copied from the other region (not shipped back);
    /// the API writes merchants, payment records and idempotency records, and delivers webhooks (endpoints, outbox,
    /// deliveries due, its lock);
    /// the orchestrator finishes payment records (and leaves each event's marker in the webhook outbox) and runs the payment sweeper (lock, cursor, takeover requests);
    /// the failover service writes the region epoch and, as the standby's applier, the ledger, the shipped records,
    /// its replication checkpoints and the takeover sweep request, and deletes a lost epoch's webhook outbox and owed
    /// deliveries before the region writes again (<see cref="Regions.RegionEpochMirror"/>).</summary>
    public static IReadOnlyList<EtcdRole> For(string keyPrefix)
    {
        var root = EtcdBytes.AsPrefix(keyPrefix);
        string[] Families(params string[] families) => families.Select(family => root + family).ToArray();
        var region = Families("region/");
        return
        [
            new EtcdRole(Ledger, Families("ledger/"), Families("region/", "api/", "payments/", EtcdOptions.WebhookEndpointsFamily, EtcdOptions.WebhookRemovalsFamily, "replication/copied")),
            new EtcdRole(Api, Families("api/", "payments/", "idempotency/", "webhooks/", "locks/webhook-dispatcher"), region),
            new EtcdRole(Orchestrator, Families("payments/", EtcdOptions.WebhookOutboxFamily, "locks/payment-sweeper", "sweeper/"), region),
            new EtcdRole(Failover, Families("region/", "ledger/", "api/", "payments/", EtcdOptions.WebhookEndpointsFamily, EtcdOptions.WebhookRemovalsFamily,
                EtcdOptions.WebhookOutboxFamily, EtcdOptions.WebhookDueFamily, "replication/", "sweeper/"), []),
            new EtcdRole(StateStore, Families(StateStoreFamily), []),
        ];
    }
}

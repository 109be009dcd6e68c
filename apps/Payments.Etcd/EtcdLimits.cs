namespace Payments.Etcd;

/// <summary>Limits our etcd clusters are started with (the chart, the run command, every test cluster).</summary>
public static class EtcdLimits
{
    /// <summary>etcd's <c>--max-txn-ops</c>, and the workflow state store's <c>maxTxnOps</c>. The apps keep their own
    /// transactions within etcd's default of 128; Dapr's workflow state needs more: purging a workflow, and
    /// scheduling one again under its id (the stuck-payment sweeper), deletes every key of its history in one
    /// transaction, refused when it has more operations than the store allows (dapr/dapr v1.18
    /// pkg/runtime/wfengine/state/state.go GetPurgeRequest, pkg/actors/state/state.go ErrTransactionsTooManyOperations).
    /// A payment that rode out outages holds thousands of events (StepBudgetTests bounds them); at 128 it
    /// could neither be purged nor resumed. A delete of a ~100-byte key keeps 4,096 of them far under etcd's 1.5 MiB
    /// request bound.</summary>
    public const int MaxTxnOps = 4096;
}

using System.Globalization;
using Payments.Etcd;

namespace Payments.LocalCluster;

/// <summary>How a local cluster's members keep storage bounded: the backend quota (0: etcd's default, 2 GiB) and the
/// compaction retention (null: <see cref="EtcdServerFlags.CompactionRetention"/>).</summary>
public sealed record EtcdStorage(long QuotaBackendBytes = 0, string? CompactionRetention = null)
{
    public static EtcdStorage Default { get; } = new();

    public IReadOnlyList<string> Flags => EtcdServerFlags.Storage(QuotaBackendBytes, CompactionRetention);
}

/// <summary>The etcd server flags that keep storage bounded, the same for the local cluster and the container suite
/// (the chart renders the same from its values; a deployment test checks they agree).</summary>
public static class EtcdServerFlags
{
    /// <summary>History kept before compaction: long enough for any read of a past revision and for a watch to catch up,
    /// short enough that a busy ledger's old versions do not pile up.</summary>
    public const string CompactionRetention = "10m";

    /// <summary>Without these a new leader (and a restarted member) gives every lease its whole TTL again (etcd-io/etcd#9888):
    /// the idempotency records' 25 h leases, the deposit volume's 49 h, never ran out where leaders changed more often
    /// than that (rolling restarts, node drains), and those families grew without bound. The leader checkpoints each
    /// lease's remaining TTL every 5 minutes, persisted (etcd 3.5's flags; 3.6 persists always).</summary>
    public static IReadOnlyList<string> LeaseCheckpoints { get; } =
        ["--experimental-enable-lease-checkpoint=true", "--experimental-enable-lease-checkpoint-persist=true"];

    /// <summary>Compaction (periodic, keeping <see cref="CompactionRetention"/>), the backend quota (0: etcd's default
    /// of 2 GiB) and the transaction size (<see cref="EtcdLimits.MaxTxnOps"/>: above etcd's default, which the apps'
    /// own transactions stay within, for Dapr's workflow state).</summary>
    /// <param name="compactionRetention">Overrides <see cref="CompactionRetention"/> (a Go duration): soak tests shorten it.</param>
    public static IReadOnlyList<string> Storage(long quotaBackendBytes = 0, string? compactionRetention = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(quotaBackendBytes);
        List<string> flags =
        [
            "--auto-compaction-mode=periodic", $"--auto-compaction-retention={compactionRetention ?? CompactionRetention}", $"--max-txn-ops={EtcdLimits.MaxTxnOps}",
            .. LeaseCheckpoints,
        ];
        if (quotaBackendBytes > 0)
        {
            flags.Add($"--quota-backend-bytes={quotaBackendBytes.ToString(CultureInfo.InvariantCulture)}");
        }

        return flags;
    }
}

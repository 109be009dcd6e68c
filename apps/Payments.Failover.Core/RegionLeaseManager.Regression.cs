using Microsoft.Extensions.Logging;

namespace Payments.Failover.Core;

/// <summary>An active-region record whose epoch went backwards: an older copy of the document put back (a backup, a
/// restored account, an edit by hand). Every guard assumes epochs only go up (a failover review): the region the copy
/// names renews it as its own — with its epoch since closed by a switchover, refused at every hold while the other
/// region never promotes; without, writing without the other region's later epochs (no catch-up: it had held that
/// number). Raising the epoch by itself was tried and not kept: without a total order of epochs across the regions (a
/// record re-created after a loss may reuse numbers the other region held) a region cannot tell a copy put back from a
/// re-created record it has not seen, and raising the latter made the region writing legitimately apply a returned
/// region's orphans. So a region that knows a higher epoch — seen in the record, or its etcd's last held — says so, at
/// error level, once per record epoch, and on its status (<see cref="LastRegression"/>); docs/runbooks/failover.md
/// says what to do.</summary>
public sealed partial class RegionLeaseManager
{
    /// <summary>The highest epoch this process has seen in the record, or held.</summary>
    private long highestEpochSeen;

    /// <summary>The record epoch last checked against this region's etcd (its last epoch held): checked once per epoch.</summary>
    private long epochCheckedInEtcd;

    /// <summary>The last record whose epoch was below one this region knows: its epoch, and the epoch known (null: none).</summary>
    public (long RecordEpoch, long Known)? LastRegression { get; private set; }

    /// <summary>Says, once per record epoch, when <paramref name="record"/>'s epoch is below one this region knows. An
    /// etcd that does not answer skips the check until the next tick (the region cannot write then anyway).</summary>
    private async Task NoteRegressionAsync(ActiveRegionRecord record, CancellationToken cancellationToken)
    {
        var known = Math.Max(highestEpochSeen, Role == RegionRole.Active ? Epoch : 0);
        if (record.Epoch >= known && record.Epoch != epochCheckedInEtcd)
        {
            try
            {
                known = Math.Max(known, await mirror.ReadLastEpochAsync(cancellationToken));
                epochCheckedInEtcd = record.Epoch;
            }
            catch (Exception exception) when (exception is Grpc.Core.RpcException || (exception is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
                return;
            }
        }

        if (record.Epoch >= known)
        {
            highestEpochSeen = Math.Max(highestEpochSeen, record.Epoch);
            return;
        }

        if (LastRegression?.RecordEpoch != record.Epoch)
        {
            logger.LogError(
                "Region {Region}: the active-region record names {Holder} with epoch {Epoch}, below epoch {Known} that this region has seen or held: "
                + "an older copy of the record put back? See docs/runbooks/failover.md, \"The active-region record lost\"",
                options.Name, record.ActiveRegion, record.Epoch, known);
        }

        LastRegression = (record.Epoch, known);
    }
}

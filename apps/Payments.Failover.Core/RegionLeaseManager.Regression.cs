using Microsoft.Extensions.Logging;

namespace Payments.Failover.Core;

/// <summary>An active-region record whose epoch went backwards: an older copy of the document put back (a backup, a
/// restored account, an edit by hand). Every guard assumes epochs only go up (a failover review): the region it names
/// renewed it as its own — with a hand-over marker above it, refused at every hold while the other region never
/// promoted (no writer, for good); without one, writing without the other region's later epochs (no catch-up: it had
/// held that number). A region that knows a higher epoch — one it saw in the record or held (its etcd's last epoch) —
/// raises the record's epoch above it, keeping who holds it: the region named then meets an epoch it never held and
/// applies the other region's journal before it writes, and a region that wrote under a later epoch stops.</summary>
public sealed partial class RegionLeaseManager
{
    /// <summary>The highest epoch this process has seen in the record, or held.</summary>
    private long highestEpochSeen;

    /// <summary>The record epoch last checked against this region's etcd (its last epoch held): checked once per epoch.</summary>
    private long epochCheckedInEtcd;

    /// <summary>Before this instant (this region's clock) the region takes no epoch: it raised the record's epoch, and a
    /// region that wrote under the older record may do so until its deadline, a lease at most after the record it
    /// renewed last. A lease and the promotion margin, as for a standby taking an expired record.</summary>
    private DateTimeOffset writableNotBefore = DateTimeOffset.MinValue;

    /// <summary>The highest epoch this region knows when <paramref name="record"/>'s is below it, else null (also when its
    /// etcd does not answer: the region cannot write then anyway, and the check runs again at the next tick).</summary>
    private async Task<long?> RegressedEpochAsync(ActiveRegionRecord record, CancellationToken cancellationToken)
    {
        var known = Math.Max(highestEpochSeen, Role == RegionRole.Active ? Epoch : 0);
        if (record.Epoch < known)
        {
            return known;
        }

        if (record.Epoch == epochCheckedInEtcd)
        {
            return null; // the common case: no etcd read
        }

        long lastHeld;
        try
        {
            lastHeld = await mirror.ReadLastEpochAsync(cancellationToken);
        }
        catch (Exception exception) when (exception is Grpc.Core.RpcException || (exception is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            return null;
        }

        if (record.Epoch < lastHeld)
        {
            return lastHeld;
        }

        epochCheckedInEtcd = record.Epoch;
        highestEpochSeen = Math.Max(highestEpochSeen, record.Epoch);
        return null;
    }

    /// <summary>Raises the epoch of a regressed record above <paramref name="known"/> (ETag compare-and-swap), keeping
    /// its holder, whose lease runs from now: an old copy's lease had long ended, and the other region took the record
    /// at once, while the region named may have been writing under the copy since it was put back. Back to
    /// <paramref name="known"/> itself when this process holds it and the record names its region: nothing happened
    /// meanwhile that it does not have. Otherwise this process stops writing first, and takes no epoch for a lease and
    /// the margin.</summary>
    private async Task RepairEpochAsync(ActiveRegionRecord record, string etag, long known, CancellationToken cancellationToken)
    {
        var ownEpochBack = record.ActiveRegion == options.Name && Role == RegionRole.Active && Epoch == known;
        var leaseFromNow = (time.GetUtcNow() + options.LeaseDuration).ToUnixTimeMilliseconds();
        var repaired = ownEpochBack
            ? record with { Epoch = known }
            : record with { Epoch = known + 1, LeaseUntilUnixMs = Math.Max(record.LeaseUntilUnixMs, leaseFromNow) };
        logger.LogError(
            "Region {Region}: the active-region record names {Holder} with epoch {Epoch}, below epoch {Known} that this region has seen or held "
            + "(an older copy of the record put back?); raising it to {Repaired} (docs/runbooks/failover.md)",
            options.Name, record.ActiveRegion, record.Epoch, known, repaired.Epoch);
        if (Role == RegionRole.Active && !ownEpochBack)
        {
            await DemoteAsync(null, cancellationToken);
        }

        string? replaced;
        try
        {
            replaced = await store.TryReplaceAsync(repaired, etag, cancellationToken);
        }
        catch (Exception exception) when (IsUnreachable(exception, cancellationToken))
        {
            logger.LogWarning("Region {Region}: raising the record's epoch failed ({Error}); tried again at the next tick", options.Name, exception.Message);
            return;
        }

        if (replaced is not null && !ownEpochBack)
        {
            writableNotBefore = time.GetUtcNow() + options.LeaseDuration + options.PromotionMargin;
        }
    }

    /// <summary>Whether this process may take an epoch now (<see cref="writableNotBefore"/>).</summary>
    private bool MayHoldNow()
    {
        if (time.GetUtcNow() >= writableNotBefore)
        {
            return true;
        }

        logger.LogWarning("Region {Region}: not writing before {NotBefore:O}, a lease and its margin after it raised the record's epoch",
            options.Name, writableNotBefore);
        return false;
    }
}

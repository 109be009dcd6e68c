using Microsoft.Extensions.Logging;

namespace Payments.Failover.Core;

/// <summary>Who creates the active-region record, and with which epoch. Found in review: the region configured active
/// created it with epoch 1 whenever it was missing, at once. Lost later — deleted by hand or by infrastructure code, a
/// container re-created, an account restored — that started a second writer while the region holding the lease still
/// wrote to its deadline, and an epoch below the one the other region still mirrored (its demotion kept it).</summary>
public sealed partial class RegionLeaseManager
{
    /// <summary>When this process first found the record missing (null: it was there at the last read).</summary>
    private DateTimeOffset? recordMissingSince;

    /// <summary>The epoch the region configured active creates the record with now, or null: epoch 1 on a fresh
    /// install (this process has seen no record and the region never held an epoch); after the record was lost, only
    /// once it has been missing for a whole lease and the promotion margin — the region that held it has stopped
    /// writing by then, its renewals failing — and above every epoch this region knows of.</summary>
    private async Task<long?> BootstrapEpochAsync(CancellationToken cancellationToken)
    {
        if (LastSeen is not null && recordMissingSince is null)
        {
            return null; // there at the last read: the cheap common case, no etcd read
        }

        long lastHeld;
        try
        {
            lastHeld = await mirror.ReadLastEpochAsync(cancellationToken);
        }
        catch (Exception exception) when (exception is Grpc.Core.RpcException || (exception is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            logger.LogWarning("Region {Region}: its etcd did not say which epoch it last held ({Error}); not creating the record", options.Name, exception.Message);
            return null;
        }

        if (LastSeen is null && lastHeld == 0 && recordMissingSince is null)
        {
            return 1;
        }

        if (recordMissingSince is not { } since || time.GetUtcNow() - since < options.LeaseDuration + options.PromotionMargin)
        {
            return null;
        }

        var epoch = Math.Max(Math.Max(lastHeld, highestEpochSeen), LastSeen?.Epoch ?? 0) + 1;
        logger.LogError("Region {Region}: the active-region record has been missing since {Since:O}; creating it again with epoch {Epoch}",
            options.Name, since, epoch);
        return epoch;
    }

    private void RecordMissing()
    {
        if (recordMissingSince is not null)
        {
            return; // said once per episode (every tick would be an error every 2 s, a standby's on every fresh install)
        }

        recordMissingSince = time.GetUtcNow();
        logger.LogError(
            "Region {Region}: the active-region record is missing from Cosmos DB (since {Since:O}); {Next}",
            options.Name, recordMissingSince, options.Role == RegionRole.Active
                ? $"this region, configured active, creates it again once it has been missing for {options.LeaseDuration + options.PromotionMargin}"
                : "the region configured active creates it again (docs/runbooks/failover.md)");
    }
}

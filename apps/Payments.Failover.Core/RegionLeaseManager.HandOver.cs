using Microsoft.Extensions.Logging;

namespace Payments.Failover.Core;

public enum HandOverOutcome
{
    /// <summary>The record names the target region with the next epoch.</summary>
    HandedOver,

    /// <summary>This region does not hold the record; nothing changed.</summary>
    NotActive,

    /// <summary>Within the cool-down after the last switchover (of either region), or one is running in another
    /// failover process of this region; nothing changed.</summary>
    NotNow,

    /// <summary>The record changed meanwhile; nothing handed over.</summary>
    Changed,

    /// <summary>Replication did not catch up within the lease, or the region's etcd did not take the hand-over marker:
    /// nothing handed over, and the region resumes writing on its next tick.</summary>
    Abandoned,

    /// <summary>Cosmos DB did not answer before anything changed (the record's read, or the lease's renewal that
    /// begins a hand-over, within a lease tick's time): nothing handed over; ask again.</summary>
    Unavailable,
}

/// <summary>What a planned switchover did, why, and (for <see cref="HandOverOutcome.NotNow"/>) when to ask again.</summary>
public sealed record HandOverResult(HandOverOutcome Outcome, string Reason, TimeSpan RetryAfter = default, long? Epoch = null);

public sealed partial class RegionLeaseManager
{
    /// <summary>Planned switchover from this active region to <paramref name="target"/>: the lease is renewed, then
    /// this region stops writing and closes its epoch in its etcd (<see cref="Payments.Etcd.Regions.RegionEpochMirror.BeginHandOverAsync"/>:
    /// no failover process of the region can hold it again), waits until what it wrote is shipped
    /// (<see cref="BeforeHandOver"/>), and hands the record over with the next epoch by compare-and-swap; the target
    /// takes it on its next tick. Refused within <paramref name="cooldown"/> of the last switchover, which the record
    /// carries, so the cool-down holds across processes and regions.</summary>
    public async Task<HandOverResult> HandOverAsync(string target, TimeSpan cooldown, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(target);
        if (target == options.Name)
        {
            throw new ArgumentException("A region cannot hand over to itself.", nameof(target));
        }

        await turn.WaitAsync(cancellationToken);
        try
        {
            ActiveRegionRecord record;
            string etag;
            try
            {
                // Within a tick's time, as the lease loop reads it: with Cosmos DB away the SDK retried its connection
                // until the switchover's 2-minute budget, the operator got a 500 after it, and the lease loop, whose
                // turn this holds, stood still all along (a probe).
                using var read = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                read.CancelAfter(options.RenewInterval);
                (record, etag) = await store.ReadAsync(read.Token);
            }
            catch (Exception exception) when (IsUnreachable(exception, cancellationToken))
            {
                return Unavailable(exception);
            }

            var now = time.GetUtcNow();
            if (record.HandedOverAt is { } at && now - at < cooldown)
            {
                return new(HandOverOutcome.NotNow,
                    $"The last switchover (to {record.ActiveRegion}) was {(now - at).TotalSeconds:F0} s ago; another is allowed after {cooldown.TotalSeconds:F0} s.",
                    cooldown - (now - at));
            }

            if (record.ActiveRegion != options.Name)
            {
                return new(HandOverOutcome.NotActive, $"Region {options.Name} does not hold the active-region record ({record.ActiveRegion} does); nothing was changed.");
            }

            if (await mirror.ReadHandOverAsync(cancellationToken) is { } marker && marker.Epoch == record.Epoch && now < marker.Until)
            {
                return new(HandOverOutcome.NotNow, "A switchover of this region is already in progress in another failover process.", marker.Until - now);
            }

            return await HandOverHeldAsync(target, record, etag, cancellationToken);
        }
        finally
        {
            turn.Release();
        }
    }

    private async Task<HandOverResult> HandOverHeldAsync(string target, ActiveRegionRecord record, string etag, CancellationToken cancellationToken)
    {
        // The lease is renewed first and the drain bounded by it: no process of this region renews it during the
        // hand-over (the marker stops the others — one that read it just before it was written may renew once, and
        // the hand-over then ends as Changed, safely — and the turn this one), and a drain that outlasted the lease
        // let the other region take over by expiry, with the tail unshipped.
        var sentAt = time.GetUtcNow();
        var renewed = record with { LeaseUntilUnixMs = (sentAt + options.LeaseDuration).ToUnixTimeMilliseconds() };
        var (renewedEtag, notRenewed) = await RenewForHandOverAsync(renewed, etag, cancellationToken);
        if (renewedEtag is null)
        {
            return notRenewed!;
        }

        Role = RegionRole.Standby;
        WritableUntil = DateTimeOffset.MinValue;
        long markerRevision;
        try
        {
            markerRevision = await mirror.BeginHandOverAsync(record.Epoch, renewed.LeaseUntil, cancellationToken);
        }
        catch (Grpc.Core.RpcException exception)
        {
            // Maybe written all the same: then the region waits out the marker and takes the next epoch (the tick).
            logger.LogWarning("Region {Region}: switchover to {Target} abandoned, its etcd did not take the hand-over marker ({Error})", options.Name, target, exception.Message);
            return new(HandOverOutcome.Abandoned, "This region's etcd did not take the hand-over; nothing was handed over.");
        }

        var (handedOver, keepMarker) = (false, false);
        try
        {
            if (await DrainWithinLeaseAsync(target, sentAt, cancellationToken) is { } abandoned)
            {
                return abandoned;
            }

            var handed = new ActiveRegionRecord(record.Id, target, record.Epoch + 1, (time.GetUtcNow() + options.LeaseDuration).ToUnixTimeMilliseconds(),
                time.GetUtcNow().ToUnixTimeMilliseconds());
            if (await ReplaceOrAskAsync(handed, renewedEtag, cancellationToken) is not { } moved)
            {
                // The marker stays to the lease's end: if the record moved, the target takes over; if not, this region
                // takes the next epoch then (HandOverUnderwayAsync). Removed now, a hand-over that happened would look
                // like an abandoned one here (LastEpochHandedOverAsync: the webhooks this region owes stay undelivered).
                keepMarker = true;
                return new(HandOverOutcome.Abandoned,
                    $"Cosmos DB did not answer whether the record moved to {target}; whichever region holds it when this lease ends writes.");
            }

            handedOver = moved;
            LastSeen = handedOver ? handed : LastSeen;
            logger.LogWarning("Region {Region}: planned switchover to {Target} with epoch {Epoch}: {Result}",
                options.Name, target, handed.Epoch, handedOver ? "handed over" : "the record changed meanwhile; nothing handed over");
            return handedOver
                ? new(HandOverOutcome.HandedOver, $"Handed over to {target}.", Epoch: handed.Epoch)
                : new(HandOverOutcome.Changed, "The active-region record changed meanwhile; nothing was handed over.");
        }
        finally
        {
            if (!handedOver && !keepMarker)
            {
                await EndHandOverQuietlyAsync(markerRevision);
            }
        }
    }

    /// <summary>The lease renewed before a hand-over, bounded as the read before it; the new ETag, or what to answer.
    /// Unanswered, it may have renewed the lease all the same: harmless (the region holds it anyway, and nothing else
    /// changed), and the next tick renews it again.</summary>
    private async Task<(string? ETag, HandOverResult? Refusal)> RenewForHandOverAsync(ActiveRegionRecord renewed, string etag, CancellationToken cancellationToken)
    {
        try
        {
            using var renewal = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            renewal.CancelAfter(options.RenewInterval);
            return await store.TryReplaceAsync(renewed, etag, renewal.Token) is { } renewedEtag
                ? (renewedEtag, null)
                : (null, new(HandOverOutcome.Changed, "The active-region record changed meanwhile; nothing was handed over."));
        }
        catch (Exception exception) when (IsUnreachable(exception, cancellationToken))
        {
            return (null, Unavailable(exception));
        }
    }

    /// <summary>Cosmos DB unanswered before anything changed: ask again in a little while.</summary>
    private HandOverResult Unavailable(Exception exception)
    {
        logger.LogWarning("Region {Region}: switchover not begun, Cosmos DB did not answer ({Error})", options.Name, exception.Message);
        return new(HandOverOutcome.Unavailable, "Cosmos DB did not answer in time, or refused (this service's log says which); nothing was changed. Ask again once it answers (GET /admin/v1/region shows the record's age).",
            UnavailableRetryAfter);
    }

    /// <summary>When an operator is told to ask again after Cosmos DB did not answer.</summary>
    public static readonly TimeSpan UnavailableRetryAfter = TimeSpan.FromSeconds(10);

    /// <summary>Waits, within the lease renewed at <paramref name="sentAt"/>, until what this region wrote is shipped
    /// (<see cref="BeforeHandOver"/>); the outcome to return when it did not catch up, null when it did.</summary>
    private async Task<HandOverResult?> DrainWithinLeaseAsync(string target, DateTimeOffset sentAt, CancellationToken cancellationToken)
    {
        if (BeforeHandOver is { } drain)
        {
            try
            {
                var left = options.LeaseDuration - options.DemoteMargin - (time.GetUtcNow() - sentAt);
                using var budget = new CancellationTokenSource(left > TimeSpan.Zero ? left : TimeSpan.Zero, time);
                using var withinLease = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, budget.Token);
                await drain(withinLease.Token);
            }
            catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                logger.LogWarning("Region {Region}: switchover to {Target} abandoned, replication did not catch up ({Error}); this region resumes",
                    options.Name, target, exception.Message);
                return new(HandOverOutcome.Abandoned, "Replication to the peer region did not catch up within the lease; nothing was handed over and this region resumes.");
            }
        }

        return null;
    }

    /// <summary>The hand-over's compare-and-swap: true when the record moved, false when it changed meanwhile, null
    /// when Cosmos DB answered neither it nor a read after it (a timeout may have come after the write applied).</summary>
    private async Task<bool?> ReplaceOrAskAsync(ActiveRegionRecord handed, string etag, CancellationToken cancellationToken)
    {
        try
        {
            return await store.TryReplaceAsync(handed, etag, cancellationToken) is not null;
        }
        catch (Exception exception) when (IsUnreachable(exception, cancellationToken))
        {
            logger.LogWarning("Region {Region}: the hand-over's write got no answer ({Error}); reading the record", options.Name, exception.Message);
        }

        try
        {
            var (now, _) = await store.ReadAsync(cancellationToken);
            return now.ActiveRegion == handed.ActiveRegion && now.Epoch == handed.Epoch;
        }
        catch (Exception exception) when (IsUnreachable(exception, cancellationToken))
        {
            return null;
        }
    }

    /// <summary>The epoch may be held again (the next tick resumes writing). If this fails, the marker ends at the
    /// lease's end and the region takes the next epoch (<see cref="HandOverUnderwayAsync"/>).</summary>
    private async Task EndHandOverQuietlyAsync(long markerRevision)
    {
        try
        {
            await mirror.EndHandOverAsync(markerRevision, CancellationToken.None);
        }
        catch (Grpc.Core.RpcException exception)
        {
            logger.LogWarning("Region {Region}: could not remove the hand-over marker ({Error}); the region resumes with the next epoch after it ends", options.Name, exception.Message);
        }
    }

    /// <summary>A planned switchover of the record's epoch began in this region, maybe in another of its failover
    /// processes. While it runs this process neither renews the lease (the switchover's compare-and-swap would then
    /// fail) nor holds the epoch (its etcd would refuse). Past the end of the lease that switchover renewed, with the
    /// record still here, its process stopped midway: the region takes the record again with the next epoch, which
    /// no marker closes. Done: this tick is done; EtcdAnswered: whether the region's etcd answered the read.</summary>
    private async Task<(bool Done, bool EtcdAnswered)> HandOverUnderwayAsync(ActiveRegionRecord record, string etag, CancellationToken cancellationToken)
    {
        (long Epoch, DateTimeOffset Until)? marker;
        try
        {
            marker = await mirror.ReadHandOverAsync(cancellationToken);
        }
        catch (Exception exception) when (exception is Grpc.Core.RpcException || (exception is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            return (false, false); // the hold reads the marker again, in the compare-and-swap that would put the epoch
        }

        if (marker is not { } handOver || handOver.Epoch != record.Epoch)
        {
            return (false, true);
        }

        WritableUntil = DateTimeOffset.MinValue;
        if (time.GetUtcNow() < handOver.Until)
        {
            logger.LogInformation("Region {Region}: a switchover of epoch {Epoch} is under way; not renewing", options.Name, record.Epoch);
            return (true, true);
        }

        logger.LogWarning("Region {Region}: a switchover closed epoch {Epoch} and stopped before handing over; taking the record again with the next epoch",
            options.Name, record.Epoch);
        await TryPromoteAsync(record, etag, cancellationToken);
        return (true, true);
    }
}

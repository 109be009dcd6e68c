using Microsoft.Extensions.Logging;

namespace Payments.Failover.Core;

/// <summary>What a region that holds the record checks in its etcd before it writes: whether it must apply the
/// previous region's journal first, and whether its etcd has been unable to take the epoch for so long that it should
/// let the other region take over.</summary>
public sealed partial class RegionLeaseManager
{
    /// <summary>Before the region writes with <paramref name="epoch"/>: the previous region's journal applied, if it
    /// has to be (<see cref="CatchingUpFrom"/>, <see cref="catchUpUnlessHeld"/>). False: not yet, nothing held.</summary>
    private async Task<bool> CaughtUpAsync(long epoch, CancellationToken cancellationToken)
    {
        if (catchUpUnlessHeld is { } pending)
        {
            var (peer, recordEpoch) = pending;
            try
            {
                // The record's epoch, not the one about to be held: a stopped switchover takes the next one at once.
                CatchingUpFrom ??= await mirror.ReadLastEpochAsync(cancellationToken) < recordEpoch ? peer : null;
                catchUpUnlessHeld = null;
            }
            catch (Exception exception) when (exception is Grpc.Core.RpcException || (exception is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
                logger.LogWarning("Region {Region}: its etcd did not say which epoch it last held ({Error}); not writing yet", options.Name, exception.Message);
                return false;
            }
        }

        if (CatchingUpFrom is { } previous && CatchUp is { } catchUp)
        {
            try
            {
                // The region's other failover process may have caught up and hold this epoch now (a process holds only
                // once caught up): then the copy is done, and draining again would fail for good — the mirror refuses
                // copies while the region holds an epoch — leaving this process renewing a lease it could not use, and
                // the region without a writer when the other process went (failover review). This very epoch held now,
                // not merely one as high held once: a record made again after it was lost may reuse an epoch number.
                if (await mirror.ReadAsync(cancellationToken) != epoch)
                {
                    await catchUp(previous, cancellationToken);
                }

                CatchingUpFrom = null;
            }
            catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                logger.LogWarning("Region {Region}: catching up with {Previous}'s journal failed ({Error}); not writing yet", options.Name, previous, exception.Message);
                return false;
            }
        }

        return true;
    }

    /// <summary>The region holds the record but has not held its epoch in its etcd for
    /// <see cref="RegionLeaseOptions.YieldAfterEtcdOutage"/>: if its etcd refused the last hold or does not answer
    /// (<paramref name="etcdAnswered"/>: this tick's read of the hand-over marker), the lease is not renewed, so the
    /// other region takes over by expiry. Renewing it regardless kept the record with a region that could not write —
    /// no payment anywhere until someone stopped this failover service. If the other region does not take it and the
    /// etcd comes back, the next renewal finds the record still here and the region writes again. A catch-up that is
    /// still failing, etcd answering, is not a reason: the region renews while it catches up.</summary>
    private async Task<bool> YieldsForEtcdAsync(bool etcdAnswered, CancellationToken cancellationToken)
    {
        if (heldAt is not { } held || time.GetUtcNow() - held < options.YieldAfterEtcdOutage || (etcdAnswered && !etcdRefusedHold))
        {
            return false;
        }

        logger.LogError("Region {Region}: its etcd has not taken the epoch since {HeldAt:O} ({Why}); not renewing the lease, so {Peer} may take over",
            options.Name, held, etcdAnswered ? "it refuses the hold" : "it does not answer", PeerRegion ?? "the other region");
        await DemoteIfDueAsync(cancellationToken);
        return true;
    }
}

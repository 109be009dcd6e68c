using Etcdserverpb;
using Microsoft.Extensions.Logging;
using Payments.Domain;
using Payments.Etcd;
using Payments.Ledger.Contracts;

namespace Payments.Ledger.Core.Expiry;

/// <summary>Voids pending transfers whose timeout has passed, a bounded page per pass, under a fenced lock.</summary>
/// <remarks>The lock keeps several sweepers from doing the same work; correctness does not rest on it: each expiry is
/// a compare-and-swap on the hold (so it happens once however many sweepers race), and each carries the lock's fence
/// (so a sweeper that lost its lock while paused cannot write at all).</remarks>
public sealed class HoldExpirySweeper(EtcdLedger ledger, string owner, ILogger<HoldExpirySweeper> logger)
{
    public const int MaxExpiriesPerPass = 256;

    /// <summary>Pages of due holds a pass reads at most. A page goes on to the next only when it was full and some of
    /// it could not be expired (index keys that name no transfer, holds that fail to expire): left at the front of the
    /// index, 256 of them made every pass read only them, and no hold expired again.</summary>
    public const int MaxPagesPerPass = 4;
    public static readonly TimeSpan LockLeaseTtl = TimeSpan.FromSeconds(10);
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromSeconds(1);

    private bool notWriting; // the last pass met the region's fence (NotWriting): said once

    public string LockKey => ledger.Keys.Prefix + "locks/hold-expiry-sweeper";

    /// <summary>One pass: takes the lock if free, expires what is due (at most <see cref="MaxExpiriesPerPass"/>),
    /// releases. Returns how many holds this pass expired (0 when another sweeper holds the lock).</summary>
    public async Task<int> SweepOnceAsync(CancellationToken cancellationToken)
    {
        // Lease timing is etcd's real time, whatever clock the ledger uses for business time.
        await using var held = await EtcdFencedLock.TryAcquireAsync(
            ledger.Store.Etcd, LockKey, owner, LockLeaseTtl, TimeProvider.System, logger, cancellationToken);
        return held is null ? 0 : await SweepAsync(held, cancellationToken);
    }

    /// <summary>Sweeps every <paramref name="interval"/> until cancelled; a failed pass is logged and the next one tries again.</summary>
    public async Task RunAsync(TimeSpan interval, CancellationToken cancellationToken)
    {
        var failures = new RecurringFailureLog(logger, "Hold expiry pass", ledger.Time, exception => exception is LedgerUnavailableException or FencedOffException);
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await SweepOnceAsync(cancellationToken);
                failures.Succeeded();
            }
            catch (Exception exception) when (!cancellationToken.IsCancellationRequested)
            {
                // Whatever failed — etcd away, the lock lost mid-pass (its token cancels the pass), a record that does
                // not read — the next pass tries again: an exception leaving here stopped the ledger service.
                failures.Failed(exception);
            }

            try
            {
                await Task.Delay(interval, ledger.Time, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    internal async Task<int> SweepAsync(EtcdFencedLock held, CancellationToken cancellationToken)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, held.LostToken);
        var keys = ledger.Keys;
        var from = EtcdBytes.Key(keys.ExpiryPrefix);
        var dueEnd = EtcdBytes.Key(keys.ExpiryDueEnd(ledger.Time.GetUtcNow().ToUnixTimeMilliseconds()));
        var expired = 0;
        for (var page = 0; page < MaxPagesPerPass; page++)
        {
            var request = new RangeRequest { Key = from, RangeEnd = dueEnd, Limit = MaxExpiriesPerPass, KeysOnly = true };
            var due = await ledger.Store.RetryingAsync(token => ledger.Store.RangeAsync(request, token), linked.Token);
            int pageExpired, skipped;
            try
            {
                (pageExpired, skipped) = await ExpirePageAsync(due.Kvs.Select(kv => kv.Key.ToStringUtf8()).ToArray(), held, linked.Token);
            }
            catch (RegionNotWritableException exception)
            {
                NotWriting(exception);
                return expired; // every other write of the pass would be refused alike
            }

            expired += pageExpired;
            if (due.Kvs.Count < MaxExpiriesPerPass || skipped == 0)
            {
                break; // all that is due was read, or the next pass reads from the front again
            }

            from = Google.Protobuf.ByteString.CopyFrom([.. due.Kvs[^1].Key, 0]); // just after the page's last key
        }

        if (expired > 0)
        {
            Writing(); // a pass with nothing due wrote nothing: it says nothing of the fence
        }

        return expired;
    }

    /// <summary>A region that does not write (the standby, or one demoted) holds copies of the active region's holds,
    /// due as their deadlines pass until the active region's expiries arrive by replication: its passes stop at the
    /// first refusal and say so once, not an error with its stack trace for every due hold, every second.</summary>
    private void NotWriting(RegionNotWritableException exception)
    {
        if (!notWriting)
        {
            notWriting = true;
            logger.LogInformation("Hold expiry paused: {Reason} Holds due here are left to the region that writes; said again when this one writes", exception.Message);
        }
    }

    private void Writing()
    {
        if (notWriting)
        {
            notWriting = false;
            logger.LogInformation("Hold expiry resumed: this region writes again");
        }
    }

    /// <summary>Expires the holds a page of due index keys names; how many it expired, and how many it had to skip.</summary>
    private async Task<(int Expired, int Skipped)> ExpirePageAsync(IReadOnlyList<string> page, EtcdFencedLock held, CancellationToken cancellationToken)
    {
        var (expired, skipped) = (0, 0);
        foreach (var key in page)
        {
            if (!TransferId.TryParse(key[(key.LastIndexOf('/') + 1)..], out var pendingId, out var problem))
            {
                logger.LogError("Hold expiry: index key {Key} names no transfer ({Problem}); skipped", key, problem);
                skipped++;
                continue;
            }

            TransferOutcome outcome;
            try
            {
                outcome = await ledger.ExpireAsync(pendingId, held, cancellationToken);
            }
            catch (Exception exception) when (exception is not (OperationCanceledException or LedgerUnavailableException or FencedOffException or Grpc.Core.RpcException or RegionNotWritableException))
            {
                // One hold that cannot be expired must not stop the others: it sorts first among the due, so every
                // pass would fail at it and no hold would ever expire again.
                logger.LogError(exception, "Hold expiry: pending transfer {PendingId} could not be expired; skipped", pendingId);
                skipped++;
                continue;
            }

            if (outcome is TransferOutcome.Applied { Replayed: false })
            {
                expired++;
                logger.LogInformation("Expired pending transfer {PendingId}", pendingId);
            }
            else if (outcome is TransferOutcome.Failed failed)
            {
                // Nothing to expire: a void's bar that has served its time (HoldBars), or an entry left behind. Left in
                // the index it would come back first in every pass and, 256 of them, stop every expiry.
                var removed = await ledger.ForgetBarAsync(key, pendingId, held, cancellationToken);
                logger.LogDebug("Pending transfer {PendingId} not expired ({Error}); index entry removed: {Removed}", pendingId, failed.Error, removed);
                skipped += removed ? 0 : 1;
            }
        }

        return (expired, skipped);
    }
}

using Etcdserverpb;
using Payments.Domain;
using Payments.Etcd;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core.Retention;
using Payments.Ledger.Core.Storage;

namespace Payments.Ledger.Core.Transfers;

/// <summary>A void that finds no hold bars the hold's id, so a hold that is still on its way cannot be placed after
/// its void answered.</summary>
/// <remarks>The saga voids a hold whose step gave up with its outcome unknown: the hold may still be in flight — in a
/// frozen ledger process, behind a slow etcd member — and commit after the void found nothing, and (in the same
/// linked batch) the settlement with it: a payment compensated with its money moved. So a void of a hold that does not
/// exist writes, in one compare-and-swap that both keys are still absent, a hold record already voided and no pending
/// transfer; <see cref="Rules.TransferRules"/> refuses a hold whose record exists
/// (<c>pending-transfer-already-voided</c>), in the hold's own transaction. The bar lasts until a late hold would be
/// refused anyway (issued before the replay window: <see cref="JournalRetentionOptions"/>); the expiry index then hands
/// it to the hold-expiry sweep, which removes it (<see cref="ForgetAsync"/>). It is not a journal entry (nothing
/// moved), but a copy of it (<c>ledger/bars/{id}</c>, written in the same transaction) ships with the region's records,
/// and the standby's replicator bars the hold there too (<see cref="ApplyCopyAsync"/>): after a switchover, a payment
/// whose outcome (failed) the fence refused here is resumed by the other region, which would otherwise find no hold,
/// decide again and settle it — and its hold, shipped back, met this bar here: skipped, the two ledgers apart for good.</remarks>
internal sealed class HoldBars(LedgerStore store, TimeProvider time, JournalRetentionOptions retention, Func<IWriteFence?>? regionFence)
{
    /// <summary>Rounds of "bar it, or find what appeared meanwhile": each ends unless a hold was placed between the
    /// void's evaluation and the bar, and the next void then finds that hold.</summary>
    public const int MaxRounds = 3;

    private LedgerKeys Keys => store.Keys;

    /// <summary>Bars <paramref name="cancel"/>'s hold after its void found none (<paramref name="notFound"/>), or, when
    /// the hold appeared meanwhile, voids it through <paramref name="voidAgain"/>. Returns the void's outcome.</summary>
    public async Task<TransferOutcome> BarAsync(
        TransferRequest.VoidPending cancel, TransferOutcome.Failed notFound, Func<Task<TransferOutcome>> voidAgain, CancellationToken cancellationToken)
    {
        var outcome = (TransferOutcome)notFound;
        var (transferKey, holdKey) = (Keys.Transfer(cancel.PendingId), Keys.Hold(cancel.PendingId));
        for (var round = 1; round <= MaxRounds; round++)
        {
            var until = BarredUntil(cancel);
            var request = new TxnRequest();
            request.Compare.Add(EtcdBytes.ModRevisionIs(transferKey, 0));
            request.Compare.Add(EtcdBytes.ModRevisionIs(holdKey, 0));
            var bar = LedgerJson.Encode(new HoldRecord(cancel.PendingId.Value, HoldStatus.Voided, until, cancel.Id.Value));
            request.Success.Add(EtcdBytes.Put(holdKey, bar));
            request.Success.Add(EtcdBytes.Put(Keys.Expiry(until, cancel.PendingId), LedgerJson.Encode(string.Empty)));
            request.Success.Add(EtcdBytes.Put(Keys.Bar(cancel.PendingId), bar));
            var (response, region) = await store.FencedTxnAsync(request, regionFence, cancellationToken);
            if (response.Succeeded)
            {
                LedgerMetrics.HoldsBarred.Add(1);
                return Barred(notFound, cancel, until);
            }

            RegionFences.ThrowIfFencedOff(region, response);
            var found = await store.ReadManyAsync([transferKey, holdKey], serializable: false, cancellationToken);
            if (!found[transferKey].Exists)
            {
                // Barred already (this void again, or another void of the same hold): the same answer as the first.
                return notFound;
            }

            // The hold was placed after the void's evaluation: void it now. A transfer under that id that is not a
            // hold answers not-found again, and can never become one.
            outcome = await voidAgain();
            if (outcome is not TransferOutcome.Failed { Error.Code: LedgerError.PendingTransferNotFound })
            {
                return outcome;
            }
        }

        return outcome;
    }

    /// <summary>For a due expiry index entry that expired nothing: removes it, and the bar it was for. Besides a bar
    /// that has served its time, an entry left behind — one naming nothing at all, or a hold that is resolved or
    /// indexed at another time (a bar the standby's journal applier replaced with the other region's hold) — is removed:
    /// left, it came back first in every pass, and 256 of them stopped every expiry. Compared on the keys it read, so a
    /// hold or transfer written meanwhile keeps it. Fenced by the sweep's lock, not by the region: in a standby
    /// region (fenced off) the bars copied from the active one (<see cref="ApplyCopyAsync"/>) are removed when due too —
    /// refused there, they stayed for as long as it was standby, two keys per payment the active region failed (a
    /// review). Removing a due bar is safe in any role: a late hold would be refused as issued before the replay
    /// window anyway; a stray index entry names nothing.</summary>
    /// <returns>Whether it removed anything.</returns>
    public async Task<bool> ForgetAsync(string indexKey, TransferId pendingId, IWriteFence fence, CancellationToken cancellationToken)
    {
        var transferKey = Keys.Transfer(pendingId);
        var holdKey = Keys.Hold(pendingId);
        var found = await store.ReadManyAsync([transferKey, holdKey], serializable: false, cancellationToken);
        var hold = found[holdKey] is { Exists: true } stored ? LedgerJson.DecodeHold(stored.Value!) : null;
        var indexed = hold?.TimeoutAtUnixMs is { } at && string.Equals(Keys.Expiry(at, pendingId), indexKey, StringComparison.Ordinal);
        var bar = !found[transferKey].Exists && hold is not null;
        if (bar ? !(indexed && IsDue(hold!)) : hold is { Status: HoldStatus.Pending } && indexed)
        {
            return false; // a bar still in force, or a pending hold's own entry (its expiry comes when it is due)
        }

        var request = new TxnRequest();
        request.Compare.Add(EtcdBytes.ModRevisionIs(transferKey, found[transferKey].ModRevision));
        request.Compare.Add(EtcdBytes.ModRevisionIs(holdKey, found[holdKey].ModRevision));
        if (bar)
        {
            request.Success.Add(EtcdBytes.Delete(holdKey));
            request.Success.Add(EtcdBytes.Delete(Keys.Bar(pendingId))); // absent for a bar copied from the other region
        }

        request.Success.Add(EtcdBytes.Delete(indexKey));
        fence.AddFence(request);
        return (await store.RetryingAsync(token => store.TxnAsync(request, token), cancellationToken)).Succeeded;
    }

    /// <summary>The standby's side of a bar's copy (<paramref name="copy"/>, as shipped): the same bar here, by
    /// compare-and-swap that the hold and its transfer are still absent and that this region holds no epoch
    /// (<paramref name="standbyFenceKey"/> absent: <see cref="JournalApplier"/>). A hold or transfer under that id here
    /// already keeps what it is (the other region wrote no hold under an id it barred); applied again, it changes
    /// nothing; one already due is not applied. Removed by this region's own expiry sweep when due, standby or not
    /// (<see cref="ForgetAsync"/>).</summary>
    public async Task ApplyCopyAsync(Google.Protobuf.ByteString copy, string standbyFenceKey, CancellationToken cancellationToken)
    {
        var bar = LedgerJson.DecodeHold(copy);
        if (bar is not { Status: HoldStatus.Voided, TimeoutAtUnixMs: { } until } || !TransferId.TryParse(bar.PendingId, out var pendingId, out _))
        {
            throw new InvalidDataException($"A shipped hold bar does not read as one ({copy.Length} bytes).");
        }

        if (IsDue(bar))
        {
            return; // served its time (a standby catching up): a late hold is refused as too old here as well
        }

        var request = new TxnRequest();
        request.Compare.Add(EtcdBytes.ModRevisionIs(Keys.Transfer(pendingId), 0));
        request.Compare.Add(EtcdBytes.ModRevisionIs(Keys.Hold(pendingId), 0));
        request.Compare.Add(EtcdBytes.ModRevisionIs(standbyFenceKey, 0));
        request.Success.Add(EtcdBytes.Put(Keys.Hold(pendingId), LedgerJson.Encode(bar)));
        request.Success.Add(EtcdBytes.Put(Keys.Expiry(until, pendingId), LedgerJson.Encode(string.Empty)));
        var response = await store.RetryingAsync(token => store.TxnAsync(request, token), cancellationToken);
        if (!response.Succeeded && (await store.RetryingAsync(token => store.GetAsync(standbyFenceKey, serializable: false, token), cancellationToken)).Exists)
        {
            throw new LedgerUnavailableException("This region holds an epoch (it writes): it applies no other region's hold bars.");
        }
    }

    /// <summary>When a late hold would be refused as issued before the replay window: the hold carries the payment's
    /// issue time, which its void carries too (no later than now, or at most the allowed clock skew ahead).</summary>
    private long BarredUntil(TransferRequest.VoidPending cancel)
    {
        var now = time.GetUtcNow();
        var issued = cancel.IssuedAt is { } at && at > now ? at : now;
        return (issued + retention.ReplayWindow + retention.MaxIssuedAhead).ToUnixTimeMilliseconds();
    }

    private bool IsDue(HoldRecord bar) => bar.TimeoutAtUnixMs is { } until && until <= time.GetUtcNow().ToUnixTimeMilliseconds();

    private static TransferOutcome.Failed Barred(TransferOutcome.Failed notFound, TransferRequest.VoidPending cancel, long until) =>
        new(notFound.Id, new LedgerError(LedgerError.PendingTransferNotFound,
            $"No pending transfer {cancel.PendingId}; none can be placed under that id until "
            + $"{DateTimeOffset.FromUnixTimeMilliseconds(until):O} (voided by {cancel.Id}), and nothing was moved."));
}

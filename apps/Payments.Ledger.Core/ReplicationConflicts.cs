using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core.Storage;

namespace Payments.Ledger.Core;

/// <summary>What the warm standby's applier (<see cref="JournalApplier"/>) does not apply of one source transaction:
/// entries about a hold this region had already decided on — resolved it, or barred it (voided before it was placed,
/// <see cref="Transfers.HoldBars"/>) — which the other region wrote after this one took over and shipped late (ADR 0003,
/// orphans). With each goes every entry of the same payment in that transaction (the same pending transfer, or the
/// same reference: the saga's settlement credits the creditor beside its post). Applied, they released the hold a
/// second time (pending amounts below zero) and paid the creditor of a payment this region had compensated. This
/// region's decision stands.</summary>
internal static class ReplicationConflicts
{
    /// <summary>The ids to skip, and among them the entries that contradict this region in money: a post of a hold
    /// released here, or a release of a hold posted here. (A release of a hold released here, or a hold placed where it
    /// was barred, agrees: the money stayed where it was in both regions.)</summary>
    public static (HashSet<string> Skipped, List<JournalEntry> Diverged) Find(
        LedgerKeys keys, JournalEntry[] entries, IReadOnlyDictionary<string, StoredValue> read, DateTimeOffset archivedBefore)
    {
        var fresh = entries.Where(entry => read[keys.Transfer(entry.TransferId)].Value is null && entry.AppliedAt > archivedBefore).ToArray();
        // Holds this transaction places here now: their state is the one it gives them (pending), not what is stored.
        var placedNow = fresh.Where(entry => entry.Kind == TransferKind.Pending && !read[keys.Hold(entry.TransferId)].Exists)
            .Select(entry => entry.TransferId).ToHashSet();
        var holds = new HashSet<TransferId>();
        var references = new HashSet<string>(StringComparer.Ordinal);
        var diverged = new List<JournalEntry>();
        foreach (var entry in fresh)
        {
            if (entry.Kind == TransferKind.Pending && !placedNow.Contains(entry.TransferId))
            {
                holds.Add(entry.TransferId); // barred here
            }
            else if (entry.Kind is not (TransferKind.Single or TransferKind.Pending) && entry.PendingId is { } pendingId && !placedNow.Contains(pendingId)
                     && read[keys.Hold(pendingId)].Value is { } stored && LedgerJson.DecodeHold(stored) is { Status: not HoldStatus.Pending } decided)
            {
                holds.Add(pendingId);
                if ((entry.Kind == TransferKind.PostPending) != (decided.Status == HoldStatus.Posted))
                {
                    diverged.Add(entry);
                }
            }
            else
            {
                continue;
            }

            if (entry.Reference is { } reference)
            {
                references.Add(reference);
            }
        }

        var skipped = fresh
            .Where(entry => (entry.Kind == TransferKind.Pending ? holds.Contains(entry.TransferId) : entry.PendingId is { } held && holds.Contains(held))
                            || (entry.Reference is { } reference && references.Contains(reference)))
            .Select(entry => entry.TransferId.Value)
            .ToHashSet(StringComparer.Ordinal);
        return (skipped, diverged);
    }
}

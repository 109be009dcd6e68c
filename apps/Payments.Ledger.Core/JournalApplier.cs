using Etcdserverpb;
using Google.Protobuf;
using Payments.Domain;
using Payments.Etcd;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core.Rules;
using Payments.Ledger.Core.Storage;

namespace Payments.Ledger.Core;

/// <summary>The warm standby's write path: applies another region's journal entries to this ledger exactly as the
/// source applied them — the same transfer ids, kinds, accounts and amounts, the same hold states — in order and
/// idempotently (an entry whose transfer is already here is skipped). It re-decides nothing (no funds or status
/// checks: the source's decision is the fact to copy), so the copy cannot diverge from the source; the entries of one
/// source transaction are applied in one etcd transaction, so a batch is never half-copied.
/// <para>Accounts come into being with their first entry (currency from the entry, no overdraft: what the public API
/// opens). It runs only while this region is the standby, which is when nothing else writes — and with
/// <paramref name="standbyFenceKey"/> (the region's epoch mirror) the store checks that: every transaction compares the
/// key absent, so a process that has not yet seen its region promoted (its reads of the region record failing) cannot
/// copy the old region's late pages into a region that writes.</para>
/// <para>With <paramref name="copyMarkerKey"/>, every transaction also puts that key: this region's shipper then leaves
/// the copies out of its own pages (the other region has them).</para></summary>
public sealed class JournalApplier(EtcdLedger ledger, string? copyMarkerKey = null, string? standbyFenceKey = null)
{
    /// <summary>Compare-and-swap rounds per source transaction before giving up (the caller retries later).</summary>
    public const int MaxAttempts = 16;

    // The series exists before the first conflict (an alert reads it: increase() of nothing is nothing, not 0).
    static JournalApplier() => LedgerMetrics.ReplicationConflicts.Add(0);

    private LedgerKeys Keys => ledger.Keys;

    /// <summary>Applies <paramref name="entries"/> (in sequence order); returns how many were new here.</summary>
    public async Task<int> ApplyAsync(IReadOnlyList<JournalEntry> entries, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var applied = 0;
        foreach (var transaction in entries.OrderBy(entry => entry.Sequence).GroupBy(entry => entry.Sequence / JournalEntry.SequencePerRevision))
        {
            applied += await ApplyTransactionAsync(transaction.ToArray(), cancellationToken);
        }

        return applied;
    }

    private async Task<int> ApplyTransactionAsync(JournalEntry[] entries, CancellationToken cancellationToken)
    {
        for (var attempt = 1; attempt <= MaxAttempts; attempt++)
        {
            var (keys, read) = await ReadAsync(entries, cancellationToken);

            var writes = new Dictionary<string, ByteString?>(StringComparer.Ordinal); // null: delete
            var accounts = new Dictionary<string, AccountRecord>(StringComparer.Ordinal);
            var holds = new Dictionary<string, HoldRecord>(StringComparer.Ordinal);
            var archivedBefore = read[Keys.ArchiveHorizon].Value is { } horizon ? LedgerJson.DecodeHorizon(horizon).ArchivedBefore : DateTimeOffset.MinValue;
            var applied = new List<string>();
            var (skipped, diverged) = ReplicationConflicts.Find(Keys, entries, read, archivedBefore);
            foreach (var entry in entries)
            {
                var transferKey = Keys.Transfer(entry.TransferId);
                if (read[transferKey].Value is not null || writes.ContainsKey(transferKey) || entry.AppliedAt <= archivedBefore)
                {
                    // Already here: replays change nothing. Or older than what this region archived: it was here
                    // (the archiver stays ArrivalDisorderBound behind the newest entry held, so an entry arriving out
                    // of time order is not under the horizon yet: ADR 0004 item 7).
                    continue;
                }

                if (skipped.Contains(entry.TransferId.Value))
                {
                    continue;
                }

                Apply(entry, read, accounts, holds, writes);
                writes[transferKey] = LedgerJson.Encode(ToRecord(entry));
                applied.Add(entry.TransferId.Value);
            }

            if (applied.Count == 0 && diverged.Count == 0)
            {
                return 0;
            }

            if (applied.Count > 0)
            {
                // The copy is archived like the source's journal: indexed by the source's applied time.
                writes[Keys.Age(entries[0].AppliedAt, applied[0])] = LedgerJson.Encode(new AgeIndexRecord(applied));
            }

            foreach (var entry in diverged)
            {
                writes[Keys.Conflict(entry.TransferId)] = LedgerJson.Encode(ToRecord(entry)); // for the operator (runbook)
            }

            foreach (var (key, account) in accounts)
            {
                writes[key] = LedgerJson.Encode(account);
            }

            foreach (var (key, hold) in holds)
            {
                writes[key] = LedgerJson.Encode(hold);
            }

            var request = Transaction(keys, read, writes);
            var response = await ledger.Store.RetryingAsync(token => ledger.Store.TxnAsync(request, token), cancellationToken);
            if (response.Succeeded)
            {
                LedgerMetrics.ReplicationConflicts.Add(diverged.Count);
                return applied.Count;
            }
        }

        throw new LedgerUnavailableException($"Applying the replicated transaction at sequence {entries[0].Sequence} conflicted {MaxAttempts} times.");
    }

    /// <summary>Every key the transaction's entries touch, read. The fence key is read and compared like every other
    /// (at revision 0: absent), so it is checked at commit too.</summary>
    private async Task<(string[] Keys, IReadOnlyDictionary<string, StoredValue> Read)> ReadAsync(JournalEntry[] entries, CancellationToken cancellationToken)
    {
        var keys = entries.SelectMany(KeysOf).Append(Keys.ArchiveHorizon).Concat(standbyFenceKey is null ? [] : [standbyFenceKey])
            .Distinct(StringComparer.Ordinal).ToArray();
        var read = await ledger.Store.RetryingAsync(token => ledger.Store.ReadManyAsync(keys, serializable: false, token), cancellationToken);
        if (standbyFenceKey is not null && read[standbyFenceKey].Exists)
        {
            throw new LedgerUnavailableException("This region holds an epoch (it writes): it applies no other region's journal.");
        }

        return (keys, read);
    }

    /// <summary>The writes, each key read compared with the revision it was read at, and the copy marker.</summary>
    private TxnRequest Transaction(string[] keys, IReadOnlyDictionary<string, StoredValue> read, Dictionary<string, ByteString?> writes)
    {
        var request = new TxnRequest();
        foreach (var key in keys)
        {
            request.Compare.Add(EtcdBytes.ModRevisionIs(key, read[key].ModRevision));
        }

        foreach (var (key, value) in writes)
        {
            request.Success.Add(value is null ? EtcdBytes.Delete(key) : EtcdBytes.Put(key, value));
        }

        if (copyMarkerKey is not null)
        {
            request.Success.Add(EtcdBytes.Put(copyMarkerKey, ByteString.Empty));
        }

        return request;
    }

    private void Apply(
        JournalEntry entry, IReadOnlyDictionary<string, StoredValue> read,
        Dictionary<string, AccountRecord> accounts, Dictionary<string, HoldRecord> holds, Dictionary<string, ByteString?> writes)
    {
        var shardBy = ShardBy(entry);
        var debitKey = AccountKey(entry.DebitAccountId, shardBy);
        var creditKey = AccountKey(entry.CreditAccountId, shardBy);
        var debit = Account(debitKey, entry.DebitAccountId, entry.Amount.Currency, read, accounts);
        var credit = Account(creditKey, entry.CreditAccountId, entry.Amount.Currency, read, accounts);
        var (debitDelta, creditDelta) = Postings.Of(entry.Kind, entry.Amount.AmountMinor);
        accounts[debitKey] = debit.Plus(debitDelta);
        accounts[creditKey] = credit.Plus(creditDelta);
        if (entry.Kind == TransferKind.Pending)
        {
            var timeoutAt = entry.TimeoutAt?.ToUnixTimeMilliseconds();
            holds[Keys.Hold(entry.TransferId)] = new HoldRecord(entry.TransferId.Value, HoldStatus.Pending, timeoutAt, null);
            if (timeoutAt is { } due)
            {
                writes[Keys.Expiry(due, entry.TransferId)] = ByteString.Empty;
            }
        }
        else if (entry.Kind != TransferKind.Single)
        {
            // Post, void, expiry: the entry repeats the pending transfer's accounts and amount; the hold is resolved.
            var pendingId = entry.PendingId ?? throw new InvalidDataException($"Entry {entry.TransferId} ({entry.Kind}) names no pending transfer.");
            var holdKey = Keys.Hold(pendingId);
            var hold = holds.GetValueOrDefault(holdKey) ?? (read[holdKey].Value is { } stored ? LedgerJson.DecodeHold(stored) : null)
                ?? throw new InvalidDataException($"Entry {entry.TransferId} resolves {pendingId}, which is not here: entries out of order.");
            holds[holdKey] = hold.Resolved(entry.Kind, entry.TransferId.Value);
            if (hold.TimeoutAtUnixMs is { } holdDue)
            {
                writes[Keys.Expiry(holdDue, pendingId)] = null;
            }
        }
    }

    /// <summary>Every key one entry reads: its transfer, both accounts (a system account's shard), its hold.</summary>
    private IEnumerable<string> KeysOf(JournalEntry entry)
    {
        var shardBy = ShardBy(entry);
        yield return Keys.Transfer(entry.TransferId);
        yield return AccountKey(entry.DebitAccountId, shardBy);
        yield return AccountKey(entry.CreditAccountId, shardBy);
        if (entry.Kind == TransferKind.Pending)
        {
            yield return Keys.Hold(entry.TransferId);
        }
        else if (entry.PendingId is { } pendingId)
        {
            yield return Keys.Hold(pendingId);
        }
    }

    /// <summary>The same shard the source used: by the transfer for a move (by its funding hold for a payout), by the
    /// pending transfer for its resolution.</summary>
    private static TransferId ShardBy(JournalEntry entry) => entry.Kind switch
    {
        TransferKind.Single => entry.FundedBy ?? entry.TransferId,
        TransferKind.Pending => entry.TransferId,
        _ => entry.PendingId ?? entry.TransferId,
    };

    private string AccountKey(AccountId id, TransferId shardBy) => id.IsSystem ? Keys.SystemShard(id, shardBy) : Keys.Account(id);

    private static AccountRecord Account(
        string key, AccountId id, Currency currency, IReadOnlyDictionary<string, StoredValue> read,
        Dictionary<string, AccountRecord> accounts) =>
        accounts.GetValueOrDefault(key)
        ?? (read[key].Value is { } stored ? LedgerJson.DecodeAccount(stored) : null)
        ?? new AccountRecord(id.Value, currency.Code, 0, Unlimited: id.IsSystem, Closed: false, 0, 0, 0);

    private static TransferRecord ToRecord(JournalEntry entry) => new(
        entry.TransferId.Value, entry.Kind, entry.DebitAccountId.Value, entry.CreditAccountId.Value, entry.Amount.AmountMinor,
        entry.Amount.Currency.Code, entry.PendingId?.Value, entry.TimeoutAt?.ToUnixTimeMilliseconds(), entry.Reference, entry.AppliedAt,
        (int)(entry.Sequence % JournalEntry.SequencePerRevision), entry.FundedBy?.Value);
}

using Etcdserverpb;
using Google.Protobuf;
using Payments.Domain;
using Payments.Etcd;
using Payments.Ledger.Core.Model;
using Payments.Ledger.Core.Storage;

namespace Payments.Ledger.Core;

/// <summary>The warm standby's write path: applies another region's journal entries to this ledger exactly as the
/// source applied them — the same transfer ids, kinds, accounts and amounts, the same hold states — in order and
/// idempotently (an entry whose transfer is already here is skipped). It re-decides nothing (no funds or status
/// checks: the source's decision is the fact to copy), so the copy cannot diverge from the source; the entries of one
/// source transaction are applied in one etcd transaction, so a batch is never half-copied.
/// <para>Accounts come into being with their first entry (currency from the entry, no overdraft: what the public API
/// opens). It writes unfenced: it runs only while this region is the standby, which is when nothing else writes.</para></summary>
public sealed class JournalApplier(EtcdLedger ledger)
{
    /// <summary>Compare-and-swap rounds per source transaction before giving up (the caller retries later).</summary>
    public const int MaxAttempts = 16;

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
            var keys = entries.SelectMany(KeysOf).Distinct(StringComparer.Ordinal).ToArray();
            var read = await ReadAsync(keys, cancellationToken);
            var writes = new Dictionary<string, ByteString?>(StringComparer.Ordinal); // null: delete
            var accounts = new Dictionary<string, AccountRecord>(StringComparer.Ordinal);
            var holds = new Dictionary<string, HoldRecord>(StringComparer.Ordinal);
            var applied = 0;
            foreach (var entry in entries)
            {
                var transferKey = Keys.Transfer(entry.TransferId);
                if (read[transferKey].Value is not null || writes.ContainsKey(transferKey))
                {
                    continue; // already here: replays change nothing
                }

                Apply(entry, read, accounts, holds, writes);
                writes[transferKey] = LedgerJson.Encode(ToRecord(entry));
                applied++;
            }

            if (applied == 0)
            {
                return 0;
            }

            foreach (var (key, account) in accounts)
            {
                writes[key] = LedgerJson.Encode(account);
            }

            foreach (var (key, hold) in holds)
            {
                writes[key] = LedgerJson.Encode(hold);
            }

            var request = new TxnRequest();
            foreach (var key in keys)
            {
                request.Compare.Add(EtcdBytes.ModRevisionIs(key, read[key].ModRevision));
            }

            foreach (var (key, value) in writes)
            {
                request.Success.Add(value is null ? EtcdBytes.Delete(key) : EtcdBytes.Put(key, value));
            }

            var response = await ledger.RetryingAsync(
                token => EtcdConnection.CallAsync(call => ledger.Etcd.Kv.TxnAsync(request, cancellationToken: call), token), cancellationToken);
            if (response.Succeeded)
            {
                return applied;
            }
        }

        throw new LedgerUnavailableException($"Applying the replicated transaction at sequence {entries[0].Sequence} conflicted {MaxAttempts} times.");
    }

    private void Apply(
        JournalEntry entry, IReadOnlyDictionary<string, (ByteString? Value, long ModRevision)> read,
        Dictionary<string, AccountRecord> accounts, Dictionary<string, HoldRecord> holds, Dictionary<string, ByteString?> writes)
    {
        var amount = entry.Amount.AmountMinor;
        var shardBy = ShardBy(entry);
        var debitKey = AccountKey(entry.DebitAccountId, shardBy);
        var creditKey = AccountKey(entry.CreditAccountId, shardBy);
        var debit = Account(debitKey, entry.DebitAccountId, entry.Amount.Currency, read, accounts);
        var credit = Account(creditKey, entry.CreditAccountId, entry.Amount.Currency, read, accounts);
        switch (entry.Kind)
        {
            case TransferKind.Single:
                debit = debit with { BalanceMinor = checked(debit.BalanceMinor - amount) };
                credit = credit with { BalanceMinor = checked(credit.BalanceMinor + amount) };
                break;
            case TransferKind.Pending:
                debit = debit with { PendingDebitMinor = checked(debit.PendingDebitMinor + amount) };
                credit = credit with { PendingCreditMinor = checked(credit.PendingCreditMinor + amount) };
                var timeoutAt = entry.TimeoutAt?.ToUnixTimeMilliseconds();
                holds[Keys.Hold(entry.TransferId)] = new HoldRecord(entry.TransferId.Value, HoldStatus.Pending, timeoutAt, null);
                if (timeoutAt is { } due)
                {
                    writes[Keys.Expiry(due, entry.TransferId)] = ByteString.Empty;
                }

                break;
            default:
                // Post, void, expiry: the entry repeats the pending transfer's accounts and amount.
                var pendingId = entry.PendingId ?? throw new InvalidDataException($"Entry {entry.TransferId} ({entry.Kind}) names no pending transfer.");
                var posted = entry.Kind == TransferKind.PostPending;
                debit = debit with
                {
                    PendingDebitMinor = checked(debit.PendingDebitMinor - amount),
                    BalanceMinor = posted ? checked(debit.BalanceMinor - amount) : debit.BalanceMinor,
                };
                credit = credit with
                {
                    PendingCreditMinor = checked(credit.PendingCreditMinor - amount),
                    BalanceMinor = posted ? checked(credit.BalanceMinor + amount) : credit.BalanceMinor,
                };
                var holdKey = Keys.Hold(pendingId);
                var hold = holds.GetValueOrDefault(holdKey) ?? (read[holdKey].Value is { } stored ? LedgerJson.DecodeHold(stored) : null)
                    ?? throw new InvalidDataException($"Entry {entry.TransferId} resolves {pendingId}, which is not here: entries out of order.");
                var status = entry.Kind switch
                {
                    TransferKind.PostPending => HoldStatus.Posted,
                    TransferKind.VoidPending => HoldStatus.Voided,
                    _ => HoldStatus.Expired,
                };
                holds[holdKey] = hold with { Status = status, ResolvedBy = entry.TransferId.Value };
                if (hold.TimeoutAtUnixMs is { } holdDue)
                {
                    writes[Keys.Expiry(holdDue, pendingId)] = null;
                }

                break;
        }

        accounts[debitKey] = debit;
        accounts[creditKey] = credit;
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

    /// <summary>The same shard the source used: by the transfer for a move, by the pending transfer for its resolution.</summary>
    private static TransferId ShardBy(JournalEntry entry) =>
        entry.Kind is TransferKind.Single or TransferKind.Pending ? entry.TransferId : entry.PendingId ?? entry.TransferId;

    private string AccountKey(AccountId id, TransferId shardBy) => id.IsSystem ? Keys.SystemShard(id, shardBy) : Keys.Account(id);

    private static AccountRecord Account(
        string key, AccountId id, Currency currency, IReadOnlyDictionary<string, (ByteString? Value, long ModRevision)> read,
        Dictionary<string, AccountRecord> accounts) =>
        accounts.GetValueOrDefault(key)
        ?? (read[key].Value is { } stored ? LedgerJson.DecodeAccount(stored) : null)
        ?? new AccountRecord(id.Value, currency.Code, 0, Unlimited: id.IsSystem, Closed: false, 0, 0, 0);

    private static TransferRecord ToRecord(JournalEntry entry) => new(
        entry.TransferId.Value, entry.Kind, entry.DebitAccountId.Value, entry.CreditAccountId.Value, entry.Amount.AmountMinor,
        entry.Amount.Currency.Code, entry.PendingId?.Value, entry.TimeoutAt?.ToUnixTimeMilliseconds(), entry.Reference, entry.AppliedAt,
        (int)(entry.Sequence % JournalEntry.SequencePerRevision));

    private async Task<Dictionary<string, (ByteString? Value, long ModRevision)>> ReadAsync(IReadOnlyList<string> keys, CancellationToken cancellationToken)
    {
        var result = new Dictionary<string, (ByteString?, long)>(StringComparer.Ordinal);
        foreach (var chunk in keys.Chunk(EtcdLedger.MaxTxnOps))
        {
            var request = new TxnRequest();
            foreach (var key in chunk)
            {
                request.Success.Add(EtcdBytes.Get(key));
            }

            var response = await ledger.RetryingAsync(
                token => EtcdConnection.CallAsync(call => ledger.Etcd.Kv.TxnAsync(request, cancellationToken: call), token), cancellationToken);
            for (var index = 0; index < chunk.Length; index++)
            {
                var kv = response.Responses[index].ResponseRange.Kvs.FirstOrDefault();
                result[chunk[index]] = kv is null ? (null, 0) : (kv.Value, kv.ModRevision);
            }
        }

        return result;
    }
}

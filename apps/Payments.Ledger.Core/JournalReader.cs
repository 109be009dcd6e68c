using Etcdserverpb;
using Payments.Domain;
using Payments.Etcd;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core.Rules;
using Payments.Ledger.Core.Storage;

namespace Payments.Ledger.Core;

/// <summary>Reads the journal in sequence order, a bounded page at a time, and snapshots balances at one revision.</summary>
public sealed class JournalReader(EtcdLedger ledger)
{
    public const int MaxPageSize = 1000;
    public const int MaxSnapshotAccounts = 1_000_000;

    /// <summary>Entries with a sequence greater than <paramref name="afterSequence"/>, in order, at most <paramref name="limit"/>
    /// (a page may hold a few fewer: it never ends in the middle of one transaction's entries).</summary>
    public async Task<IReadOnlyList<JournalEntry>> ReadAsync(long afterSequence, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, EtcdLedger.MaxTxnOps);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(limit, MaxPageSize);
        var fromRevision = afterSequence / JournalEntry.SequencePerRevision;
        var prefix = ledger.Keys.TransfersPrefix;
        var request = new RangeRequest
        {
            Key = EtcdBytes.Key(prefix),
            RangeEnd = EtcdBytes.PrefixEnd(prefix),
            MinModRevision = fromRevision,
            SortTarget = RangeRequest.Types.SortTarget.Mod,
            SortOrder = RangeRequest.Types.SortOrder.Ascend,
            Limit = limit,
        };
        var response = await ledger.Store.RetryingAsync(token => RangeAsync(request, token), cancellationToken);
        var kvs = response.Kvs.ToList();
        if (response.More && kvs.Count > 0)
        {
            // etcd's sort is not stable among equal revisions: drop the last transaction's entries (the next page
            // starts with them), unless the page is that one transaction, which then fits in one more call.
            var lastRevision = kvs[^1].ModRevision;
            if (kvs[0].ModRevision == lastRevision)
            {
                request.Limit = 0;
                request.MaxModRevision = lastRevision;
                kvs = (await ledger.Store.RetryingAsync(token => RangeAsync(request, token), cancellationToken)).Kvs.ToList();
            }
            else
            {
                kvs.RemoveAll(kv => kv.ModRevision == lastRevision);
            }
        }

        return kvs
            .Select(kv => ToEntry(LedgerJson.DecodeTransfer(kv.Value), kv.ModRevision))
            .Where(entry => entry.Sequence > afterSequence)
            .OrderBy(entry => entry.Sequence)
            .ToArray();
    }

    /// <summary>etcd's current revision, by a linearizable read of one key (the call is for its header): the journal's
    /// prefix itself, no range — a range with a limit counts every key it spans (docs/benchmarks.md).</summary>
    public async Task<long> CurrentRevisionAsync(CancellationToken cancellationToken)
    {
        var request = new RangeRequest { Key = EtcdBytes.Key(ledger.Keys.TransfersPrefix), KeysOnly = true };
        return (await ledger.Store.RetryingAsync(token => RangeAsync(request, token), cancellationToken)).Header.Revision;
    }

    /// <summary>Every journal entry, in order (bounded by <paramref name="maxEntries"/>).</summary>
    public async Task<IReadOnlyList<JournalEntry>> ReadAllAsync(int maxEntries, CancellationToken cancellationToken)
    {
        var entries = new List<JournalEntry>();
        var after = 0L;
        while (entries.Count < maxEntries)
        {
            var page = await ReadAsync(after, MaxPageSize, cancellationToken);
            if (page.Count == 0)
            {
                return entries;
            }

            entries.AddRange(page);
            after = page[^1].Sequence;
        }

        throw new InvalidOperationException($"The journal holds more than {maxEntries} entries.");
    }

    /// <summary>Every account (system accounts summed over their shards) as of one etcd revision.</summary>
    public async Task<IReadOnlyList<Account>> SnapshotAccountsAsync(CancellationToken cancellationToken)
    {
        var records = new List<(AccountRecord Record, long Version)>();
        var revision = 0L;
        foreach (var prefix in new[] { ledger.Keys.AccountsPrefix, ledger.Keys.SystemPrefix })
        {
            var start = EtcdBytes.Key(prefix);
            while (records.Count <= MaxSnapshotAccounts)
            {
                var request = new RangeRequest { Key = start, RangeEnd = EtcdBytes.PrefixEnd(prefix), Limit = MaxPageSize, Revision = revision };
                var response = await ledger.Store.RetryingAsync(token => RangeAsync(request, token), cancellationToken);
                revision = revision == 0 ? response.Header.Revision : revision;
                records.AddRange(response.Kvs.Select(kv => (LedgerJson.DecodeAccount(kv.Value), kv.Version)));
                if (!response.More)
                {
                    break;
                }

                start = Google.Protobuf.ByteString.CopyFrom([.. response.Kvs[^1].Key.Span, 0]);
            }
        }

        return records
            .GroupBy(item => item.Record.Id, StringComparer.Ordinal)
            .Select(group => new Account(
                AccountId.FromStorage(group.Key),
                Currency.FromCode(group.First().Record.Currency),
                group.First().Record.OverdraftLimitMinor,
                group.First().Record.Closed,
                // Summed in 128 bits: LedgerLimits keeps every shard small enough for the total to fit in 64.
                LedgerLimits.ToInt64(LedgerLimits.Sum(group, item => item.Record.BalanceMinor), $"The balance of {group.Key}"),
                LedgerLimits.ToInt64(LedgerLimits.Sum(group, item => item.Record.PendingDebitMinor), $"The pending debits of {group.Key}"),
                LedgerLimits.ToInt64(LedgerLimits.Sum(group, item => item.Record.PendingCreditMinor), $"The pending credits of {group.Key}"),
                group.Sum(item => item.Version)))
            .ToArray();
    }

    /// <summary>What the archived entries of each account added up to (empty while nothing was archived).</summary>
    public async Task<IReadOnlyDictionary<AccountId, Balances>> ArchivedSumsAsync(CancellationToken cancellationToken)
    {
        var sums = new Dictionary<AccountId, Balances>();
        var prefix = ledger.Keys.ArchivedPrefix;
        var start = EtcdBytes.Key(prefix);
        while (sums.Count <= MaxSnapshotAccounts)
        {
            var request = new RangeRequest { Key = start, RangeEnd = EtcdBytes.PrefixEnd(prefix), Limit = MaxPageSize };
            var response = await ledger.Store.RetryingAsync(token => RangeAsync(request, token), cancellationToken);
            foreach (var record in response.Kvs.Select(kv => LedgerJson.DecodeArchived(kv.Value)))
            {
                sums[AccountId.FromStorage(record.AccountId)] = record.Balances;
            }

            if (!response.More)
            {
                break;
            }

            start = Google.Protobuf.ByteString.CopyFrom([.. response.Kvs[^1].Key.Span, 0]);
        }

        return sums;
    }

    /// <summary>A change feed of the journal (its transfer records as they are put): what a shipper reads each round
    /// instead of <see cref="ReadAsync"/>, whose range etcd serves by reading the whole journal.</summary>
    public EtcdChangeFeed NewFeed() => new(ledger.Store.Etcd, ledger.Keys.TransfersPrefix);

    /// <summary>The journal entry a transfer record put at <paramref name="revision"/> stands for.</summary>
    public static JournalEntry EntryOf(Google.Protobuf.ByteString value, long revision) => ToEntry(LedgerJson.DecodeTransfer(value), revision);

    internal static JournalEntry ToEntry(TransferRecord record, long revision) => new(
        (revision * JournalEntry.SequencePerRevision) + record.BatchIndex,
        TransferId.Parse(record.Id),
        record.Kind,
        AccountId.FromStorage(record.DebitAccountId),
        AccountId.FromStorage(record.CreditAccountId),
        new Money(record.AmountMinor, Currency.FromCode(record.Currency)),
        record.PendingId is null ? null : TransferId.Parse(record.PendingId),
        record.TimeoutAtUnixMs is { } timeout ? DateTimeOffset.FromUnixTimeMilliseconds(timeout) : null,
        record.Reference,
        record.AppliedAt,
        record.FundedBy is null ? null : TransferId.Parse(record.FundedBy));

    private Task<RangeResponse> RangeAsync(RangeRequest request, CancellationToken cancellationToken) =>
        ledger.Store.RangeAsync(request, cancellationToken);
}

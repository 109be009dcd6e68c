using Etcdserverpb;
using Payments.Domain;
using Payments.Etcd;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core.Rules;
using Payments.Ledger.Core.Storage;

namespace Payments.Ledger.Core.Retention;

/// <summary>One archival transaction being planned from records read at known revisions: the keys it deletes (each
/// compared with the revision read), the archived sums it rewrites, the horizon it moves.</summary>
internal sealed class ArchivePlan(LedgerKeys keys, IReadOnlyDictionary<string, StoredValue> reads, long replicatedRevision)
{
    /// <summary>The reason <see cref="TryAdd"/> gives when the transaction has no room for the entry (not a wait).</summary>
    public const string PageFull = "page full";

    private readonly List<string> compared = [];
    private readonly List<string> indexKeys = [];
    private readonly Dictionary<string, ArchivedSumsRecord> sums = new(StringComparer.Ordinal);
    private DateTimeOffset horizon = reads[keys.ArchiveHorizon] is { Exists: true } stored
        ? LedgerJson.DecodeHorizon(stored.Value!).ArchivedBefore
        : DateTimeOffset.MinValue;

    /// <summary>Journal entries planned for deletion.</summary>
    public int Entries { get; private set; }

    /// <summary>Adds one age-index entry's transfers, or nothing: null when added, else why not.</summary>
    public string? TryAdd(string indexKey, AgeIndexRecord index, int maxOps)
    {
        var records = new List<(string Key, TransferRecord Record)>();
        var holds = new List<string>();
        foreach (var id in index.TransferIds)
        {
            var key = keys.Transfer(TransferId.Parse(id));
            if (reads[key] is not { Exists: true } stored)
            {
                continue; // archived by an earlier pass that did not get to its index key: nothing left to do
            }

            if (stored.ModRevision > replicatedRevision)
            {
                return $"entry {id} (revision {stored.ModRevision}) is not yet replicated (through revision {replicatedRevision})";
            }

            var record = LedgerJson.DecodeTransfer(stored.Value!);
            if (record.Kind == TransferKind.Pending && reads[keys.Hold(TransferId.Parse(id))] is { Exists: true } hold)
            {
                if (LedgerJson.DecodeHold(hold.Value!).Status == HoldStatus.Pending)
                {
                    return $"hold {id} is still open";
                }

                holds.Add(keys.Hold(TransferId.Parse(id)));
            }

            records.Add((key, record));
        }

        var accounts = records.SelectMany(item => new[] { item.Record.DebitAccountId, item.Record.CreditAccountId })
            .Select(keys.Archived).Where(key => !sums.ContainsKey(key)).Distinct(StringComparer.Ordinal).Count();
        var compares = compared.Count + records.Count + holds.Count + sums.Count + accounts;
        if (compares + indexKeys.Count + 1 + 1 > maxOps)
        {
            return PageFull;
        }

        var added = new Dictionary<string, ArchivedSumsRecord>(sums, StringComparer.Ordinal);
        try
        {
            foreach (var (_, record) in records)
            {
                var (debit, credit) = Postings.Of(record.Kind, record.AmountMinor);
                Add(added, record.DebitAccountId, debit);
                Add(added, record.CreditAccountId, credit);
            }
        }
        catch (OverflowException)
        {
            return $"the archived sums of an account in {indexKey} would overflow 64 bits";
        }

        foreach (var (key, value) in added)
        {
            sums[key] = value;
        }

        compared.AddRange(records.Select(item => item.Key));
        compared.AddRange(holds);
        indexKeys.Add(indexKey);
        Entries += records.Count;
        foreach (var (_, record) in records.Where(item => item.Record.AppliedAt > horizon))
        {
            horizon = record.AppliedAt;
        }

        return null;
    }

    /// <summary>The transaction: compares on everything read, then the deletions and the rewritten sums and horizon.</summary>
    public TxnRequest ToTransaction()
    {
        var request = new TxnRequest();
        foreach (var key in compared.Concat(sums.Keys).Append(keys.ArchiveHorizon))
        {
            request.Compare.Add(EtcdBytes.ModRevisionIs(key, reads[key].ModRevision));
        }

        foreach (var key in compared.Concat(indexKeys))
        {
            request.Success.Add(EtcdBytes.Delete(key));
        }

        foreach (var (key, value) in sums)
        {
            request.Success.Add(EtcdBytes.Put(key, LedgerJson.Encode(value)));
        }

        request.Success.Add(EtcdBytes.Put(keys.ArchiveHorizon, LedgerJson.Encode(new ArchiveHorizonRecord(horizon))));
        return request;
    }

    private void Add(Dictionary<string, ArchivedSumsRecord> into, string accountId, Balances delta)
    {
        var key = keys.Archived(accountId);
        var current = into.GetValueOrDefault(key)
            ?? (reads[key] is { Exists: true } stored ? LedgerJson.DecodeArchived(stored.Value!) : new ArchivedSumsRecord(accountId, 0, 0, 0, 0));
        into[key] = current.Plus(delta);
    }
}

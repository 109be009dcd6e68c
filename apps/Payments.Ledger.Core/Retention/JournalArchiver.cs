using Etcdserverpb;
using Microsoft.Extensions.Logging;
using Payments.Etcd;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core.Rules;
using Payments.Ledger.Core.Storage;

namespace Payments.Ledger.Core.Retention;

/// <summary>Moves settled journal entries out of etcd once they are older than <see cref="JournalRetentionOptions.KeepFor"/>
/// and their copy is durable elsewhere (ADR 0004): walks the age index oldest first, a bounded page per transaction,
/// deleting each entry, the hold record of a resolved pending transfer, and the index key, while adding the entries'
/// postings to their accounts' archived sums — so "the journal replays to every balance" stays checkable as
/// archived sums + retained journal.</summary>
/// <remarks>One archiver at a time holds a fenced lock; every archival transaction carries the fence and compares
/// every record it read, so a paused archiver that lost its lock writes nothing. It stops at the first entry that is
/// not yet replicated (<paramref name="replicatedThrough"/>, a journal sequence) or that holds an open hold: the
/// index is in time order, so nothing newer is looked at before it.</remarks>
/// <param name="replicatedThrough">The journal sequence known durable outside etcd (the shipper's), read per page.</param>
public sealed class JournalArchiver(EtcdLedger ledger, Func<long> replicatedThrough, string owner, ILogger<JournalArchiver> logger)
{
    public const int MaxIndexEntriesPerPage = 32;
    public const int MaxPagesPerPass = 64;
    public static readonly TimeSpan LockLeaseTtl = TimeSpan.FromSeconds(15);

    // The lock's fence and the horizon take one compare each; everything else must fit beside them.
    private const int MaxOps = LedgerStore.MaxTxnOps - 2;

    private LedgerKeys Keys => ledger.Keys;

    public string LockKey => Keys.Prefix + "locks/journal-archiver";

    /// <summary>How long past its retention the oldest journal entry in etcd was at this archiver's last read of the age
    /// index (zero: none was); exported as <c>payments.ledger.archival_overdue</c>.</summary>
    public TimeSpan LastOverdue { get; private set; }

    /// <summary>What stopped the last page short of the cut-off (null: it reached it, or archived a full page).</summary>
    public string? LastStop { get; private set; }

    /// <summary>One pass: at most <see cref="MaxPagesPerPass"/> pages under the lock. Returns the entries archived
    /// (0 when another archiver holds the lock).</summary>
    public async Task<int> ArchiveOnceAsync(CancellationToken cancellationToken)
    {
        await using var held = await EtcdFencedLock.TryAcquireAsync(
            ledger.Store.Etcd, LockKey, owner, LockLeaseTtl, TimeProvider.System, logger, cancellationToken);
        if (held is null)
        {
            return 0;
        }

        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, held.LostToken);
        var archived = 0;
        for (var page = 0; page < MaxPagesPerPass; page++)
        {
            var (entries, more) = await ArchivePageAsync(held, linked.Token);
            archived += entries;
            if (!more)
            {
                break;
            }
        }

        if (archived > 0)
        {
            LedgerMetrics.Archived.Add(archived);
            logger.LogInformation("Archived {Entries} journal entries applied before {Cutoff:O}", archived, ledger.Time.GetUtcNow() - ledger.Retention.KeepFor);
        }

        return archived;
    }

    /// <summary>Archives until cancelled, a pass per interval; a failed pass is logged and the next one tries again.</summary>
    public async Task RunAsync(TimeSpan interval, CancellationToken cancellationToken)
    {
        // The archive away (Cosmos DB answering 503, its client timing out) is an outage like etcd's.
        var failures = new RecurringFailureLog(logger, "Journal archival pass", ledger.Time,
            exception => exception is LedgerUnavailableException or FencedOffException || RecurringFailureLog.IsAwayOverHttp(exception));
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await ArchiveOnceAsync(cancellationToken);
                failures.Succeeded();
            }
            catch (Exception exception) when (!cancellationToken.IsCancellationRequested)
            {
                // Anything (an entry that does not read, too): every ledger pod runs the archiver, and an exception
                // leaving here stopped the ledger service in each — payments stopped for an archival fault.
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

    /// <summary>The oldest index entries (a page) that may be archived: applied before KeepFor, and at least
    /// <see cref="JournalRetentionOptions.ArrivalDisorderBound"/> before an entry the region holds (so before its newest
    /// by that much, see there). Such an entry is found by a probe, ascending with a limit of one, from the page's newest
    /// time plus the bound (in a region taking writes it is there, and the whole page goes); failing that, from the
    /// page's oldest (a region catching up on an old backlog, or idle: the part of the page far enough behind goes).
    /// Asking etcd for the newest key instead (a descending sort) reads the whole index, whatever the limit.</summary>
    /// <returns>The entries, and whether the page read was full (more may follow).</returns>
    private async Task<(IReadOnlyList<(string Key, AgeIndexRecord Record)> Entries, bool FullPage)> ArchivableIndexAsync(CancellationToken cancellationToken)
    {
        var index = await ReadIndexAsync(ledger.Time.GetUtcNow() - ledger.Retention.KeepFor, cancellationToken);
        var fullPage = index.Count == MaxIndexEntriesPerPage;
        if (index.Count == 0)
        {
            return (index, false);
        }

        var bound = ledger.Retention.ArrivalDisorderBound;
        var times = new List<DateTimeOffset>(index.Count);
        foreach (var (key, _) in index)
        {
            if (!LedgerKeys.TryAgeTimeOf(key, Keys.AgePrefix, out var at) || at > DateTimeOffset.MaxValue - bound)
            {
                break; // the page ends before a key that names no time
            }

            times.Add(at);
        }

        if (times.Count == 0)
        {
            LastStop = $"the age key {index[0].Key} names no time"; // never archived unchecked: an operator's to look at
            logger.LogError("Journal archival stops at age key {Key}: it names no time", index[0].Key);
            return ([], false);
        }

        var held = await FirstHeldFromAsync(times[^1] + bound, cancellationToken) ?? await FirstHeldFromAsync(times[0] + bound, cancellationToken);
        if (held is not { } newer)
        {
            // What is left is the region's newest minutes, kept until a later entry comes: an idle region, not a stall
            // (the journal does not grow), so nothing counts as overdue — else a region idle for days raised the alert.
            LastOverdue = TimeSpan.Zero;
            LedgerMetrics.RecordOverdue(TimeSpan.Zero);
            LastStop = $"waits for an entry applied {bound.TotalMinutes:0} minutes after the oldest (entries may arrive out of time order)";
            return ([], false);
        }

        // Strictly before: an entry arriving a whole bound out of order, at the cutoff's own time, is not yet under the
        // horizon (the applier skips what is at or before it).
        var cutoff = newer - bound;
        return ([.. index.Take(times.Count).Where((_, position) => times[position] < cutoff)], fullPage && times.Count == index.Count);
    }

    /// <summary>The time of the first age key at or after <paramref name="from"/>, or null when there is none (or it
    /// names no time).</summary>
    private async Task<DateTimeOffset?> FirstHeldFromAsync(DateTimeOffset from, CancellationToken cancellationToken)
    {
        var probe = new RangeRequest
        {
            Key = EtcdBytes.Key(Keys.AgeEnd(from)),
            RangeEnd = EtcdBytes.PrefixEnd(Keys.AgePrefix),
            Limit = 1,
            KeysOnly = true,
        };
        var found = await ledger.Store.RetryingAsync(token => ledger.Store.RangeAsync(probe, token), cancellationToken);
        return found.Kvs.Count > 0 && LedgerKeys.TryAgeTimeOf(found.Kvs[0].Key.ToStringUtf8(), Keys.AgePrefix, out var at) ? at : null;
    }

    /// <summary>One transaction's worth: returns the entries archived and whether a further page may have work.</summary>
    private async Task<(int Entries, bool More)> ArchivePageAsync(EtcdFencedLock held, CancellationToken cancellationToken)
    {
        LastStop = null;
        var (index, fullPage) = await ArchivableIndexAsync(cancellationToken);
        if (index.Count == 0)
        {
            return (0, false);
        }

        var transferKeys = index.SelectMany(item => item.Record.TransferIds).Select(id => Keys.Transfer(Domain.TransferId.Parse(id))).ToArray();
        var transfers = await ReadAsync(transferKeys, cancellationToken);
        var related = transfers.Values.Where(value => value.Exists).Select(value => LedgerJson.DecodeTransfer(value.Value!))
            .SelectMany(record => RelatedKeys(record)).Append(Keys.ArchiveHorizon).Distinct(StringComparer.Ordinal).ToArray();
        var reads = await ReadAsync(related, cancellationToken);
        foreach (var (key, value) in transfers)
        {
            reads[key] = value;
        }

        var plan = new ArchivePlan(Keys, reads, replicatedThrough() / JournalEntry.SequencePerRevision);
        var planned = 0;
        var full = false;
        foreach (var item in index)
        {
            var refusal = plan.TryAdd(item.Key, item.Record, MaxOps);
            full = refusal == ArchivePlan.PageFull;
            if (refusal is not null)
            {
                LastStop = full ? null : refusal;
                break;
            }

            planned++;
        }

        if (planned == 0)
        {
            logger.LogDebug("Journal archival waits: {Reason}", LastStop);
            return (0, false);
        }

        var request = plan.ToTransaction();
        held.AddFence(request);
        var response = await ledger.Store.RetryingAsync(token => ledger.Store.TxnAsync(request, token), cancellationToken);
        if (!response.Succeeded)
        {
            if (held.WasFencedOff(response))
            {
                throw new FencedOffException($"Lock {held.Key} with fencing token {held.FencingToken} is no longer held; nothing was archived.");
            }

            LastStop = "a record changed while the page was read; the next pass reads it again";
            return (0, false);
        }

        return (plan.Entries, full || (planned == index.Count && fullPage));
    }

    private IEnumerable<string> RelatedKeys(TransferRecord record)
    {
        yield return Keys.Archived(record.DebitAccountId);
        yield return Keys.Archived(record.CreditAccountId);
        if (record.Kind == TransferKind.Pending)
        {
            yield return Keys.Hold(Domain.TransferId.Parse(record.Id));
        }
    }

    private async Task<IReadOnlyList<(string Key, AgeIndexRecord Record)>> ReadIndexAsync(DateTimeOffset cutoff, CancellationToken cancellationToken)
    {
        var request = new RangeRequest
        {
            Key = EtcdBytes.Key(Keys.AgePrefix),
            RangeEnd = EtcdBytes.Key(Keys.AgeEnd(cutoff)),
            Limit = MaxIndexEntriesPerPage,
        };
        var response = await ledger.Store.RetryingAsync(token => ledger.Store.RangeAsync(request, token), cancellationToken);
        // Measured before anything of the page is decoded: a value that does not read stalls archival here, every pass.
        // A first key that names no time stops archival for an operator (below): reported a whole retention overdue.
        LastOverdue = response.Kvs.Count == 0 ? TimeSpan.Zero
            : LedgerKeys.TryAgeTimeOf(response.Kvs[0].Key.ToStringUtf8(), Keys.AgePrefix, out var oldest) ? cutoff - oldest : ledger.Retention.KeepFor;
        LedgerMetrics.RecordOverdue(LastOverdue);
        return response.Kvs.Select(kv => (kv.Key.ToStringUtf8(), LedgerJson.DecodeAge(kv.Value))).ToArray();
    }

    private async Task<Dictionary<string, StoredValue>> ReadAsync(IReadOnlyList<string> keys, CancellationToken cancellationToken) =>
        new(await ledger.Store.RetryingAsync(token => ledger.Store.ReadManyAsync(keys, serializable: false, token), cancellationToken), StringComparer.Ordinal);
}

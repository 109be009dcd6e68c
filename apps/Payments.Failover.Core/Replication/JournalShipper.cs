using System.Net;
using Microsoft.Azure.Cosmos;
using Microsoft.Extensions.Logging;
using Payments.Etcd;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core;

namespace Payments.Failover.Core.Replication;

/// <summary>Ships the active region's ledger journal to Cosmos DB: the next entries after the region's head become
/// page <c>n + 1</c>, created never overwritten (each ledger pod ships: the page that is there first stands, and the
/// head moves to what it holds), then the head moves by ETag compare-and-swap. Point operations only. In <c>sync</c> mode a ledger write is acknowledged only after
/// <see cref="WaitShippedAsync"/> saw its entries shipped (group commit: one page serves every writer waiting for it);
/// in <c>async</c> mode nothing waits and <see cref="LagMilliseconds"/> says how far behind shipping is.</summary>
public sealed partial class JournalShipper(string region, Container journal, EtcdLedger ledger, TimeProvider time, ILogger logger) : IAsyncDisposable
{
    /// <summary>What else ships beside the journal: records under these prefixes (relative to
    /// <see cref="RecordRoot"/>), e.g. <c>api/</c> and <c>payments/</c>. Empty: the journal only.</summary>
    public IReadOnlyList<string> RecordPrefixes { get; init; } = [];

    /// <summary>The region's key prefix (e.g. <c>/daprpayments/</c>), which record keys are shipped relative to.</summary>
    public string RecordRoot { get; init; } = "/daprpayments/";

    /// <summary>The region's etcd, read for <see cref="RecordPrefixes"/>.</summary>
    public EtcdConnection? Etcd { get; init; }

    public const int MaxEntriesPerPage = 256;

    /// <summary>Changes a page from the feeds holds at most (whole revisions; one revision alone may be more): what a
    /// page read by range held at most, a journal page and one per record family.</summary>
    public const int MaxChangesPerPage = 3 * MaxEntriesPerPage;

    /// <summary>Bytes of changed values a page holds at most (whole revisions; one revision alone may be more): Cosmos
    /// DB refuses an item over 2 MB, for good — the same page retried for ever, every sync write unacknowledged and the
    /// archiver stalled behind it. Records ship base64 (4/3) inside JSON, so the bound is half the limit: 768 webhook
    /// endpoints of ~3 KB re-shipped at a takeover came to ~3 MB.</summary>
    public const int MaxPageBytes = 1_000_000;

    /// <summary>How long a round waits for etcd to say how far a feed is complete (it answers at once when the feed's
    /// watch has caught up; while it catches up, the changes it has delivered tell).</summary>
    public static readonly TimeSpan ProgressWait = TimeSpan.FromSeconds(1);
    public const int MaxWaiters = 10_000;
    public static readonly TimeSpan IdleInterval = TimeSpan.FromMilliseconds(50);
    public static readonly TimeSpan FaultBackoff = TimeSpan.FromMilliseconds(500);

    /// <summary>The pause after a fault of no known kind (a defect or data that does not read: retrying at once only
    /// fills the log).</summary>
    public static readonly TimeSpan UnexpectedFaultBackoff = TimeSpan.FromSeconds(5);
    private readonly List<(long Sequence, TaskCompletionSource Shipped)> waiters = [];
    private long shippedSequence = -1;
    private long lagMilliseconds;
    private bool headEnsured;
    private EtcdChangeFeed[]? feeds;
    private long rangeRounds;

    /// <summary>Rounds that read the current keys instead of the feeds (the head was older than etcd's history).</summary>
    public long RangeRounds => Interlocked.Read(ref rangeRounds);

    public string Region => region;

    /// <summary>The last sequence durable in Cosmos (-1 before the head was first read).</summary>
    public long ShippedSequence => Interlocked.Read(ref shippedSequence);

    /// <summary>Age of the oldest entry not yet shipped when the shipper last looked (0 when it was caught up).</summary>
    public long LagMilliseconds => Interlocked.Read(ref lagMilliseconds);

    /// <summary>One round: ships at most one page; returns the entries and records shipped (or, when it found only
    /// copies of the peer's journal and records, the copies it stepped over).</summary>
    public async Task<int> ShipOnceAsync(CancellationToken cancellationToken)
    {
        var (head, etag) = await ReadHeadAsync(cancellationToken);
        await EnsureHeadWithinHistoryAsync(head, cancellationToken);
        Publish(head.LastSequence);
        IReadOnlyList<JournalEntry> entries;
        IReadOnlyList<RecordDocument> records;
        long? through;
        long? compacted = null;
        var (copies, copiedThrough, recordsThrough) = (0, head.LastSequence, head.LastRecordRevision);
        try
        {
            (entries, records, through, copies, copiedThrough) = await ReadChangesAsync(head, cancellationToken);
        }
        catch (EtcdCompactedException exception)
        {
            // The head is older than etcd's history (shipping stopped for longer than the compaction window): this
            // round reads the current keys instead, every one of them (what the feeds spare every other round).
            logger.LogWarning("Region {Region}: {Reason}; shipping from the current keys until the head is within etcd's history", region, exception.Message);
            Interlocked.Increment(ref rangeRounds);
            (entries, records, copies, copiedThrough, recordsThrough) = await ReadCurrentKeysAsync(head, cancellationToken);
            (through, compacted) = (null, exception.CompactRevision);
        }

        if (entries.Count == 0 && records.Count == 0 && copies > 0)
        {
            // Only copies of the peer's journal and records: the head moves past them, else every round read them again
            // (counted as done: the caller's loop goes on to what follows them).
            var past = head with { LastSequence = copiedThrough, LastRecordRevision = recordsThrough };
            return await TryReplaceHeadAsync(through is { } skipped ? Past(past, skipped) : past, etag, cancellationToken) ? copies : 0;
        }

        if (entries.Count == 0 && records.Count == 0 && compacted is { } history)
        {
            // Nothing after the head, read after etcd compacted to `history`: nothing changed up to there either, so
            // the head moves there and the next round reads the feeds (a quiet region would else read every key each round).
            await TryReplaceHeadAsync(Past(head, history), etag, cancellationToken);
            return 0;
        }

        if (entries.Count == 0 && records.Count == 0)
        {
            Interlocked.Exchange(ref lagMilliseconds, 0);
            return 0;
        }

        Interlocked.Exchange(ref lagMilliseconds, entries.Count == 0 ? 0 : (long)Math.Max(0, (time.GetUtcNow() - entries[0].AppliedAt).TotalMilliseconds));
        var next = NextHead(head, entries, records, through);
        // Copies ship in no page.
        next = next with { LastSequence = Math.Max(next.LastSequence, copiedThrough), LastRecordRevision = Math.Max(next.LastRecordRevision, recordsThrough) };
        var page = new JournalPage(JournalPage.IdFor(region, next.Pages), region, next.Pages, entries.Select(JournalEntryDocument.From).ToArray(), records, next);
        if (await CreatePageAsync(page, entries, head, cancellationToken) is { } stored)
        {
            // Page n + 1 exists already: another shipper of this region (every ledger pod runs one) or an earlier round
            // of this one that died before moving the head wrote it, from feeds that may have been further along or
            // behind ours. The page stands as written — it was upserted, and a slower shipper's page replaced a faster
            // one's after that one had moved the head past it: entries in no page, never replicated — and the head
            // moves to what the stored page holds.
            next = stored.Head ?? LegacyNextHead(head, stored);
        }

        if (!await TryReplaceHeadAsync(next, etag, cancellationToken))
        {
            return 0; // another shipper of this region moved the head; the next round continues from there
        }

        Publish(next.LastSequence);
        return entries.Count + records.Count;
    }

    /// <summary>The head moved past <paramref name="revision"/> with nothing shipped up to there.</summary>
    private static JournalHead Past(JournalHead head, long revision) => head with
    {
        LastJournalRevision = Math.Max(head.LastJournalRevision, revision), LastRecordRevision = Math.Max(head.LastRecordRevision, revision),
    };

    /// <summary>What changed after the head, from etcd watches kept open between rounds (<see cref="EtcdChangeFeed"/>):
    /// the journal's transfer records and the records under <see cref="RecordPrefixes"/>, through the revision all feeds
    /// are complete to, at most a page's worth of whole revisions. Returns the revision the page reaches.
    /// <para>What the standby's replicator copied from the peer (its transactions put
    /// <see cref="JournalReplicator.CopyMarker"/>) is left out, counted in <c>Copies</c>, with the sequence of the last
    /// journal entry left out (<c>CopiedThrough</c>, else the head's): shipped back, the peer catching up from this
    /// region (a failover pod of the active region restarting, a fail-back) put its own records' old values over their
    /// new ones, and went through every page of its own history again before writing.</para></summary>
    private async Task<(IReadOnlyList<JournalEntry> Entries, IReadOnlyList<RecordDocument> Records, long Through, int Copies, long CopiedThrough)> ReadChangesAsync(
        JournalHead head, CancellationToken cancellationToken)
    {
        // A page never ends inside a revision: the last entry's revision is shipped whole.
        var journalAfter = Math.Max(head.LastSequence / JournalEntry.SequencePerRevision, head.LastJournalRevision);
        feeds ??= CreateFeeds();
        var complete = await Task.WhenAll(feeds.Select((feed, index) =>
            feed.RefreshAsync(index == 0 ? journalAfter : head.LastRecordRevision, ProgressWait, cancellationToken, enough: MaxChangesPerPage)));
        var through = complete.Min();
        SeenInEtcd(through); // this etcd's, from feeds that start at a head found within its history
        var changes = feeds
            .SelectMany((feed, index) => feed.Held(through).Select(change => (Journal: index == 0, Feed: feed, Change: change)))
            .Where(item => item.Change.Revision > (item.Journal ? journalAfter : head.LastRecordRevision))
            .OrderBy(item => item.Change.Revision)
            .ToList();
        var taken = WholeRevisions(changes, item => item.Change.Revision, item => item.Change.Key.Length + item.Change.Value.Length, MaxChangesPerPage);

        var cut = taken < changes.Count ? changes[taken - 1].Change.Revision : through;
        var page = changes.Take(taken).ToList();
        var root = EtcdBytes.AsPrefix(RecordRoot);
        var marker = root + JournalReplicator.CopyMarker;
        var copied = page.Where(item => item.Feed.Prefix == marker).Select(item => item.Change.Revision).ToHashSet();
        var all = page.Where(item => item.Journal)
            .Select(item => JournalReader.EntryOf(item.Change.Value, item.Change.Revision))
            .OrderBy(entry => entry.Sequence)
            .ToArray();
        var entries = all.Where(entry => !copied.Contains(entry.Sequence / JournalEntry.SequencePerRevision)).ToArray();
        var copiedThrough = all.Where(entry => copied.Contains(entry.Sequence / JournalEntry.SequencePerRevision))
            .Select(entry => entry.Sequence).DefaultIfEmpty(head.LastSequence).Max();
        var records = page.Where(item => !item.Journal && item.Feed.Prefix != marker && !copied.Contains(item.Change.Revision))
            .Select(item => new RecordDocument((item.Feed.Prefix + item.Change.Key)[root.Length..], Convert.ToBase64String(item.Change.Value.Span), item.Change.Revision))
            .ToArray();
        return (entries, records, cut, copied.Count, Math.Max(head.LastSequence, copiedThrough));
    }

    /// <summary>How many of <paramref name="ordered"/> (by revision) a page takes: whole revisions, at most
    /// <paramref name="maxCount"/> items and <see cref="MaxPageBytes"/> — at least the first revision, whatever its size
    /// (a transaction holds at most 128 operations).</summary>
    internal static int WholeRevisions<T>(IReadOnlyList<T> ordered, Func<T, long> revisionOf, Func<T, long> bytesOf, int maxCount)
    {
        var (taken, bytes) = (0, 0L);
        while (taken < ordered.Count)
        {
            var revision = revisionOf(ordered[taken]);
            var (end, revisionBytes) = (taken, 0L);
            while (end < ordered.Count && revisionOf(ordered[end]) == revision)
            {
                revisionBytes += bytesOf(ordered[end]);
                end++;
            }

            if (taken > 0 && (end > maxCount || bytes + revisionBytes > MaxPageBytes))
            {
                break;
            }

            (taken, bytes) = (end, bytes + revisionBytes);
        }

        return taken;
    }

    /// <summary>The journal's feed first, then one per record prefix, then the replicator's copy marker.</summary>
    private EtcdChangeFeed[] CreateFeeds()
    {
        var root = EtcdBytes.AsPrefix(RecordRoot);
        var recordFeeds = RecordPrefixes.Count == 0 || Etcd is null ? []
            : RecordPrefixes.Append(JournalReplicator.CopyMarker).Select(relative => new EtcdChangeFeed(Etcd, root + relative));
        return [new JournalReader(ledger).NewFeed(), .. recordFeeds];
    }

    /// <summary>Ships until <paramref name="cancellationToken"/> ends; faults are logged and retried after a pause.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            await ShipUntilCancelledAsync(cancellationToken);
        }
        finally
        {
            await DisposeAsync();
        }
    }

    /// <summary>Closes the feeds' watches (a later round opens them again).</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var feed in Interlocked.Exchange(ref feeds, null) ?? [])
        {
            await feed.DisposeAsync();
        }
    }

    private async Task ShipUntilCancelledAsync(CancellationToken cancellationToken)
    {
        var lastRoundAt = time.GetTimestamp();
        while (!cancellationToken.IsCancellationRequested)
        {
            var shipped = 0;
            try
            {
                shipped = await ShipOnceAsync(cancellationToken);
                lastRoundAt = time.GetTimestamp();
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return; // stopping
            }
            catch (Exception exception) when (exception is CosmosException or HttpRequestException or LedgerUnavailableException or Grpc.Core.RpcException
                                              or OperationCanceledException)
            {
                logger.LogWarning("Region {Region}: journal shipping failed ({Error}); retrying", region, exception.Message);
                RoundFailed(exception, lastRoundAt);
                await DelayAsync(FaultBackoff, cancellationToken);
                continue;
            }
            catch (EtcdHistoryResetException reset)
            {
                LogHistoryReset(reset);
                await DelayAsync(FaultBackoff, cancellationToken);
                continue;
            }
            catch (Exception exception) when (!cancellationToken.IsCancellationRequested)
            {
                // Anything else (an entry or record that does not read): logged and retried, not thrown — leaving here
                // stopped the ledger service, and every ledger pod ships. The replication lag alert names what stays.
                // The feeds start over (a fault of their own state used to be cleared by that restart).
                logger.LogError(exception, "Region {Region}: journal shipping failed unexpectedly; retrying", region);
                RoundFailed(exception, lastRoundAt);
                try
                {
                    await DisposeAsync();
                }
                catch (Exception closing) when (!cancellationToken.IsCancellationRequested)
                {
                    logger.LogWarning(closing, "Region {Region}: closing the change feeds failed too", region);
                }

                await DelayAsync(UnexpectedFaultBackoff, cancellationToken);
                continue;
            }

            if (shipped == 0)
            {
                await DelayAsync(IdleInterval, cancellationToken);
            }
        }
    }

    /// <summary>Completes when every entry up to <paramref name="sequence"/> is durable in Cosmos; throws
    /// <see cref="TimeoutException"/> after <paramref name="timeout"/> (the write stays committed but unacknowledged:
    /// the client's retry replays it and waits again).</summary>
    public async Task WaitShippedAsync(long sequence, TimeSpan timeout, CancellationToken cancellationToken)
    {
        TaskCompletionSource shipped;
        lock (waiters)
        {
            if (ShippedSequence >= sequence)
            {
                return;
            }

            if (waiters.Count >= MaxWaiters)
            {
                throw new TimeoutException($"{MaxWaiters} writes are already waiting for replication; refusing to queue more.");
            }

            shipped = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            waiters.Add((sequence, shipped));
        }

        try
        {
            await shipped.Task.WaitAsync(timeout, time, cancellationToken);
        }
        finally
        {
            lock (waiters)
            {
                waiters.RemoveAll(waiter => waiter.Shipped == shipped);
            }
        }
    }

    private void Publish(long sequence)
    {
        lock (waiters)
        {
            if (sequence > shippedSequence)
            {
                Interlocked.Exchange(ref shippedSequence, sequence);
            }

            foreach (var waiter in waiters.Where(waiter => waiter.Sequence <= sequence))
            {
                waiter.Shipped.TrySetResult();
            }
        }
    }

    /// <summary>False when another shipper of this region moved the head meanwhile (nothing written).</summary>
    private async Task<bool> TryReplaceHeadAsync(JournalHead next, string etag, CancellationToken cancellationToken)
    {
        try
        {
            await journal.ReplaceItemAsync(next, next.Id, new PartitionKey(next.Id), new ItemRequestOptions { IfMatchEtag = etag }, cancellationToken);
            SeenInEtcd(RevisionOf(next)); // read from this etcd (by this shipper or another of the region)
            return true;
        }
        catch (CosmosException exception) when (exception.StatusCode == HttpStatusCode.PreconditionFailed)
        {
            return false;
        }
    }

    private async Task<(JournalHead Head, string ETag)> ReadHeadAsync(CancellationToken cancellationToken)
    {
        var id = JournalHead.IdFor(region);
        if (!headEnsured)
        {
            try
            {
                await journal.CreateItemAsync(new JournalHead(id, region, 0, 0, 0), new PartitionKey(id), cancellationToken: cancellationToken);
            }
            catch (CosmosException exception) when (exception.StatusCode == HttpStatusCode.Conflict)
            {
                // shipped before: continue from its head
            }

            headEnsured = true;
        }

        var response = await journal.ReadItemAsync<JournalHead>(id, new PartitionKey(id), cancellationToken: cancellationToken);
        return (response.Resource, response.ETag);
    }

    private async Task DelayAsync(TimeSpan delay, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(delay, time, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // stopping
        }
    }
}

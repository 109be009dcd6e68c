using System.Net;
using Microsoft.Azure.Cosmos;
using Microsoft.Extensions.Logging;
using Payments.Etcd;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core;

namespace Payments.Failover.Core.Replication;

/// <summary>Ships the active region's ledger journal to Cosmos DB: the next entries after the region's head become
/// page <c>n + 1</c> (upserted: a page rewritten after a crash was never visible), then the head moves by ETag
/// compare-and-swap. Point operations only. In <c>sync</c> mode a ledger write is acknowledged only after
/// <see cref="WaitShippedAsync"/> saw its entries shipped (group commit: one page serves every writer waiting for it);
/// in <c>async</c> mode nothing waits and <see cref="LagMilliseconds"/> says how far behind shipping is.</summary>
public sealed class JournalShipper(string region, Container journal, EtcdLedger ledger, TimeProvider time, ILogger logger)
{
    /// <summary>What else ships beside the journal: records under these prefixes (relative to
    /// <see cref="RecordRoot"/>), e.g. <c>api/</c> and <c>payments/</c>. Empty: the journal only.</summary>
    public IReadOnlyList<string> RecordPrefixes { get; init; } = [];

    /// <summary>The region's key prefix (e.g. <c>/daprpayments/</c>), which record keys are shipped relative to.</summary>
    public string RecordRoot { get; init; } = "/daprpayments/";

    /// <summary>The region's etcd, read for <see cref="RecordPrefixes"/>.</summary>
    public EtcdConnection? Etcd { get; init; }

    public const int MaxEntriesPerPage = 256;
    public const int MaxWaiters = 10_000;
    public static readonly TimeSpan IdleInterval = TimeSpan.FromMilliseconds(50);
    public static readonly TimeSpan FaultBackoff = TimeSpan.FromMilliseconds(500);
    private readonly List<(long Sequence, TaskCompletionSource Shipped)> waiters = [];
    private long shippedSequence = -1;
    private long lagMilliseconds;
    private bool headEnsured;

    public string Region => region;

    /// <summary>The last sequence durable in Cosmos (-1 before the head was first read).</summary>
    public long ShippedSequence => Interlocked.Read(ref shippedSequence);

    /// <summary>Age of the oldest entry not yet shipped when the shipper last looked (0 when it was caught up).</summary>
    public long LagMilliseconds => Interlocked.Read(ref lagMilliseconds);

    /// <summary>One round: ships at most one page; returns the entries shipped.</summary>
    public async Task<int> ShipOnceAsync(CancellationToken cancellationToken)
    {
        var (head, etag) = await ReadHeadAsync(cancellationToken);
        Publish(head.LastSequence);
        var entries = await new JournalReader(ledger).ReadAsync(head.LastSequence, MaxEntriesPerPage, cancellationToken);
        var records = await ReadRecordsAsync(head.LastRecordRevision, cancellationToken);
        if (entries.Count == 0 && records.Count == 0)
        {
            Interlocked.Exchange(ref lagMilliseconds, 0);
            return 0;
        }

        Interlocked.Exchange(ref lagMilliseconds, entries.Count == 0 ? 0 : (long)Math.Max(0, (time.GetUtcNow() - entries[0].AppliedAt).TotalMilliseconds));
        var page = new JournalPage(JournalPage.IdFor(region, head.Pages + 1), region, head.Pages + 1, entries.Select(JournalEntryDocument.From).ToArray(), records);
        await journal.UpsertItemAsync(page, new PartitionKey(page.Id), cancellationToken: cancellationToken);
        var next = head with
        {
            Pages = page.Number,
            LastSequence = entries.Count == 0 ? head.LastSequence : entries[^1].Sequence,
            LastAppliedAtUnixMs = entries.Count == 0 ? head.LastAppliedAtUnixMs : entries[^1].AppliedAt.ToUnixTimeMilliseconds(),
            LastRecordRevision = records.Count == 0 ? head.LastRecordRevision : records.Max(record => record.Revision),
        };
        try
        {
            await journal.ReplaceItemAsync(next, next.Id, new PartitionKey(next.Id), new ItemRequestOptions { IfMatchEtag = etag }, cancellationToken);
        }
        catch (CosmosException exception) when (exception.StatusCode == HttpStatusCode.PreconditionFailed)
        {
            return 0; // another shipper of this region moved the head; the next round continues from there
        }

        Publish(next.LastSequence);
        return entries.Count + records.Count;
    }

    /// <summary>Records changed after <paramref name="afterRevision"/>, oldest first, at most a page's worth; never
    /// ending in the middle of one etcd revision (the next page starts at the revision after the last one here).</summary>
    private async Task<IReadOnlyList<RecordDocument>> ReadRecordsAsync(long afterRevision, CancellationToken cancellationToken)
    {
        if (RecordPrefixes.Count == 0 || Etcd is null)
        {
            return [];
        }

        var root = EtcdBytes.AsPrefix(RecordRoot);
        var found = new List<(string Key, Google.Protobuf.ByteString Value, long Revision)>();
        var horizon = long.MaxValue;
        foreach (var relative in RecordPrefixes)
        {
            var prefix = root + relative;
            var request = new Etcdserverpb.RangeRequest
            {
                Key = EtcdBytes.Key(prefix),
                RangeEnd = EtcdBytes.PrefixEnd(prefix),
                MinModRevision = afterRevision + 1,
                SortTarget = Etcdserverpb.RangeRequest.Types.SortTarget.Mod,
                SortOrder = Etcdserverpb.RangeRequest.Types.SortOrder.Ascend,
                Limit = MaxEntriesPerPage,
            };
            var response = await EtcdConnection.CallAsync(token => Etcd.Kv.RangeAsync(request, cancellationToken: token), cancellationToken);
            found.AddRange(response.Kvs.Select(kv => (kv.Key.ToStringUtf8()[root.Length..], kv.Value, kv.ModRevision)));
            if (response.More && response.Kvs.Count > 0)
            {
                // This prefix has more at its last revision and after: nothing from that revision on is complete.
                horizon = Math.Min(horizon, response.Kvs[^1].ModRevision);
            }
        }

        // One etcd transaction holds at most 128 operations, so a cut revision always leaves earlier ones to ship.
        var ordered = found.Where(record => record.Revision < horizon).OrderBy(record => record.Revision).ToList();
        return ordered.Select(record => new RecordDocument(record.Key, Convert.ToBase64String(record.Value.Span), record.Revision)).ToArray();
    }

    /// <summary>Ships until <paramref name="cancellationToken"/> ends; faults are logged and retried after a pause.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            var shipped = 0;
            try
            {
                shipped = await ShipOnceAsync(cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return; // stopping
            }
            catch (Exception exception) when (exception is CosmosException or HttpRequestException or LedgerUnavailableException or Grpc.Core.RpcException
                                              or OperationCanceledException)
            {
                logger.LogWarning("Region {Region}: journal shipping failed ({Error}); retrying", region, exception.Message);
                await DelayAsync(FaultBackoff, cancellationToken);
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

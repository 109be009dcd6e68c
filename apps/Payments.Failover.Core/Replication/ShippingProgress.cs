using Microsoft.Azure.Cosmos;
using Payments.Etcd;
using Payments.Ledger.Core;

namespace Payments.Failover.Core.Replication;

/// <summary>Whether everything a region's ledger holds is in its replicated journal (its head has reached the last
/// entry), and the API's records shipped beside it too: what a planned switchover waits for, after the region stopped
/// writing.</summary>
public sealed class ShippingProgress(Container journal, EtcdLedger ledger, TimeProvider time)
{
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(200);

    /// <summary>The local Cosmos-compatible server answers 500 for a missing document (see <see cref="JournalStore.TryReadAsync{T}"/>).</summary>
    public bool ServerErrorMeansMissing { get; init; }

    /// <summary>How long one check waits for etcd to say how far a watch is complete.</summary>
    private static readonly TimeSpan ProgressWait = TimeSpan.FromSeconds(1);

    /// <summary>The region's key prefix, when its records under <see cref="EtcdOptions.ReplicatedRecordFamilies"/> ship
    /// with its journal: caught up then also means none changed after the head's last shipped revision (a switchover
    /// that waited for the journal alone could leave the last payment records behind).</summary>
    public string? RecordRoot { get; init; }

    /// <summary>The region's etcd, read for <see cref="RecordRoot"/>.</summary>
    public EtcdConnection? Etcd { get; init; }

    public async Task<bool> IsCaughtUpAsync(string region, CancellationToken cancellationToken)
    {
        var feeds = NewFeeds();
        try
        {
            return await IsCaughtUpAsync(region, feeds, cancellationToken);
        }
        finally
        {
            await DisposeAsync(feeds);
        }
    }

    /// <summary>One check, asking <paramref name="feeds"/> (one per record family; kept open across a wait's polls, so
    /// each poll asks an open watch rather than opening one and having etcd replay its history since the head).</summary>
    private async Task<bool> IsCaughtUpAsync(string region, EtcdChangeFeed[] feeds, CancellationToken cancellationToken)
    {
        var head = await JournalStore.TryReadAsync<JournalHead>(journal, JournalHead.IdFor(region), cancellationToken, ServerErrorMeansMissing);
        if (head is not null && JournalShipper.RevisionOf(head) > await new JournalReader(ledger).CurrentRevisionAsync(cancellationToken))
        {
            // The head names revisions this etcd has not reached: rebuilt or restored under it. What it wrote since sits
            // below the head and never shipped (JournalShipper's EtcdHistoryResetException): not caught up.
            return false;
        }

        // The journal, as the records: asked of a watch from the head's revision when the head names one. The range
        // with MinModRevision reads every transfer key kept (8 days of them: millions at a payment a second), five
        // times a second, each past etcd's deadline at that size, and the switchover ran out of its drain budget.
        // Shipped through the revision the shipper itself reads on from (JournalShipper.ReadChangesAsync): a round that
        // read the current keys moves LastSequence alone.
        var journalShipped = head is null ? 0 : Math.Max(head.LastSequence / Payments.Ledger.Contracts.JournalEntry.SequencePerRevision, head.LastJournalRevision);
        var journalFeed = feeds.Length > 0 && journalShipped > 0 ? feeds[^1] : null;
        if (journalFeed is null
            && (await new JournalReader(ledger).ReadAsync(head?.LastSequence ?? 0, EtcdLedger.MaxTxnOps, cancellationToken)).Count > 0)
        {
            return false;
        }

        // The families at once: each may wait up to ProgressWait for etcd's answer, and one after another (three now,
        // with the accounts' settings) they took most of a switchover's drain budget under load.
        var quiet = await Task.WhenAll(feeds.Select(feed => feed == feeds[^1]
            ? journalFeed is null ? Task.FromResult(true) : NothingPutSinceAsync(feed, journalShipped, cancellationToken)
            : NothingPutSinceAsync(feed, head?.LastRecordRevision ?? 0, cancellationToken)));
        return quiet.All(nothingPut => nothingPut);
    }

    /// <summary>Whether nothing was put under the prefix of <paramref name="feed"/> after <paramref name="shippedThrough"/>, asked of
    /// a watch from there: etcd answers it from its history since then, which is what changed — a range with
    /// <c>MinModRevision</c> reads every key under the prefix instead (docs/benchmarks.md, "Journal shipping's reads"),
    /// five times a second for as long as a switchover waits. Yes only when the watch is complete up to etcd's revision
    /// as of this call; when etcd's history no longer reaches back that far, the range answers.</summary>
    private async Task<bool> NothingPutSinceAsync(EtcdChangeFeed feed, long shippedThrough, CancellationToken cancellationToken)
    {
        var prefix = feed.Prefix;
        var now = (await EtcdConnection.CallAsync(token => Etcd!.Kv.RangeAsync(new Etcdserverpb.RangeRequest
        {
            Key = EtcdBytes.Key(prefix), KeysOnly = true, // one key: the call is for the revision in its header
        }, cancellationToken: token), cancellationToken)).Header.Revision;
        if (now <= shippedThrough)
        {
            return true;
        }

        if (shippedThrough == 0)
        {
            // No record shipped yet: a watch from the first revision would have etcd replay its whole history, once
            // per family (five now) and per poll, which under load outlasted a switchover's drain budget. Any key
            // under the prefix is one not shipped.
            return await NoKeySinceAsync(prefix, 0, cancellationToken);
        }

        try
        {
            var complete = await feed.RefreshAsync(shippedThrough, ProgressWait, cancellationToken, enough: 1);
            return complete >= now && feed.Held(complete).Count == 0;
        }
        catch (EtcdCompactedException)
        {
            return await NoKeySinceAsync(prefix, shippedThrough, cancellationToken);
        }
        catch (Grpc.Core.RpcException) when (!cancellationToken.IsCancellationRequested)
        {
            return false; // the watch broke: not known yet, asked again at the next poll
        }
    }

    /// <summary>Whether no key under <paramref name="prefix"/> was last written after <paramref name="shippedThrough"/>
    /// (a range: etcd reads every key under the prefix to answer it).</summary>
    private async Task<bool> NoKeySinceAsync(string prefix, long shippedThrough, CancellationToken cancellationToken)
    {
        var newer = await EtcdConnection.CallAsync(token => Etcd!.Kv.RangeAsync(new Etcdserverpb.RangeRequest
        {
            Key = EtcdBytes.Key(prefix), RangeEnd = EtcdBytes.PrefixEnd(prefix), MinModRevision = shippedThrough + 1, KeysOnly = true, Limit = 1,
        }, cancellationToken: token), cancellationToken);
        return newer.Kvs.Count == 0;
    }

    public async Task WaitCaughtUpAsync(string region, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var started = time.GetTimestamp();
        var feeds = NewFeeds();
        try
        {
            while (!await IsCaughtUpAsync(region, feeds, cancellationToken))
            {
                if (time.GetElapsedTime(started) >= timeout)
                {
                    throw new TimeoutException($"Region {region}'s journal was not fully shipped within {timeout.TotalSeconds} s.");
                }

                await Task.Delay(PollInterval, time, cancellationToken);
            }
        }
        finally
        {
            await DisposeAsync(feeds);
        }
    }

    /// <summary>One feed per record family, and the journal's (the transfers) last.</summary>
    private EtcdChangeFeed[] NewFeeds() => RecordRoot is null || Etcd is null
        ? []
        :
        [
            .. EtcdOptions.ReplicatedRecordFamilies.Select(family => new EtcdChangeFeed(Etcd, EtcdBytes.AsPrefix(RecordRoot) + family)),
            new EtcdChangeFeed(Etcd, ledger.JournalPrefix),
        ];

    private static async Task DisposeAsync(IEnumerable<EtcdChangeFeed> feeds)
    {
        foreach (var feed in feeds)
        {
            await feed.DisposeAsync();
        }
    }
}

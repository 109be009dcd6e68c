using Etcdserverpb;
using Google.Protobuf;
using Payments.Etcd;
using Payments.Ledger.IntegrationTests.Infrastructure;
using Payments.Testing;

namespace Payments.Ledger.IntegrationTests;

/// <summary>The change feed the journal shipper reads instead of a MinModRevision range (which etcd serves by reading
/// every key under the prefix): it delivers every put after a revision, once, in revision order, says how far it is
/// complete, holds no more than its capacity, and tells when etcd no longer has the history it was asked for.</summary>
[Collection(EtcdCollection.Name)]
public sealed class EtcdChangeFeedTests(EtcdClusterFixture etcd)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task EveryPutAfterTheRevision_ArrivesOnce_InOrder_AndTheFeedSaysItIsComplete()
    {
        var prefix = EtcdClusterFixture.NewPrefix();
        var before = await PutAsync(prefix + "a", "1");
        await PutAsync(prefix + "b", "1");
        await etcd.Connection.Client.DeleteAsync(prefix + "b"); // deletions are not changes the feed passes on
        var last = await PutAsync(prefix + "a", "2");
        await PutAsync(EtcdClusterFixture.NewPrefix() + "elsewhere", "x");
        await using var feed = new EtcdChangeFeed(etcd.Connection, prefix);

        var complete = await feed.RefreshAsync(before, Wait, CancellationToken.None);

        Assert.True(complete >= last, $"complete through {complete}, the last put was at {last}");
        Assert.Equal(["b=1", "a=2"], feed.Held(complete).Select(change => $"{change.Key}={change.Value.ToStringUtf8()}"));
        Assert.Equal(feed.Held(complete).Select(change => change.Revision).Order(), feed.Held(complete).Select(change => change.Revision));

        // What was shipped (up to the revision asked from) is dropped; what comes later arrives on the open watch.
        var next = await PutAsync(prefix + "c", "1");
        complete = await feed.RefreshAsync(last, Wait, CancellationToken.None);
        Assert.True(complete >= next);
        Assert.Equal(["c=1"], feed.Held(complete).Select(change => $"{change.Key}={change.Value.ToStringUtf8()}"));
    }

    [Fact]
    public async Task AFullFeed_StopsReading_AndGoesOnOnceWhatItHeldIsShipped()
    {
        const int Capacity = 100;
        const int EtcdBatch = 1_000; // revisions etcd sends at most in one response while a watch catches up
        var prefix = EtcdClusterFixture.NewPrefix();
        var start = await PutAsync(prefix + "start", "0");
        var revisions = new List<long>();
        foreach (var chunk in Enumerable.Range(0, 1_200).Chunk(20))
        {
            revisions.AddRange(await Task.WhenAll(chunk.Select(index => PutAsync($"{prefix}k{index:D4}", "v")))); // a revision each
        }

        revisions.Sort();

        await using var feed = new EtcdChangeFeed(etcd.Connection, prefix, Capacity);
        var seen = new List<long>();
        var after = start;
        for (var round = 0; round < 100 && after < revisions[^1]; round++)
        {
            // As the shipper asks: a feed holding a page's worth need not wait for etcd's word (a progress
            // notification queues behind the events a full feed has not read yet).
            var complete = await feed.RefreshAsync(after, Wait, CancellationToken.None, enough: 50);
            var held = feed.Held(complete);
            Assert.True(held.Count <= Capacity + EtcdBatch, $"held {held.Count}, more than the capacity and one response");
            seen.AddRange(held.Take(50).Select(change => change.Revision)); // a page at a time
            after = seen.Count > 0 ? seen[^1] : after;
        }

        Assert.Equal(revisions, seen);
    }

    [Fact]
    public async Task AFeedAskedForCompactedHistory_SaysSo()
    {
        var prefix = EtcdClusterFixture.NewPrefix();
        var old = await PutAsync(prefix + "a", "1");
        var now = await PutAsync(prefix + "a", "2");
        await etcd.Connection.Kv.CompactAsync(new CompactionRequest { Revision = now });
        await using var feed = new EtcdChangeFeed(etcd.Connection, prefix);

        var refused = await Assert.ThrowsAsync<EtcdCompactedException>(() => feed.RefreshAsync(old - 1, Wait, CancellationToken.None));

        Assert.Equal(now, refused.CompactRevision);
        // From within the history, the same feed delivers again.
        Assert.True(await feed.RefreshAsync(now, Wait, CancellationToken.None) >= now);
    }

    private async Task<long> PutAsync(string key, string value) =>
        (await etcd.Connection.Kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8(key), Value = ByteString.CopyFromUtf8(value) })).Header.Revision;
}

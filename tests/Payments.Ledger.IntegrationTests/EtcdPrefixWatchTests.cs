using System.Threading.Channels;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;
using Payments.Etcd;
using Payments.Ledger.IntegrationTests.Infrastructure;
using Payments.Testing;

namespace Payments.Ledger.IntegrationTests;

/// <summary>A watch sends only what its subscriber uses: the status waiters' watch ends before the markers sorted
/// after the payment records, and the webhook leader's takes no deletions. Events come in revision order, so once the
/// last key written has arrived, anything the watch was going to send from before it has arrived too.</summary>
[Collection(EtcdCollection.Name)]
public sealed class EtcdPrefixWatchTests(EtcdClusterFixture etcd)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task AWatchEndingBeforeTheMarkers_IsNotSentThem()
    {
        var prefix = EtcdClusterFixture.NewPrefix();
        var seen = await WatchWhileAsync(new EtcdPrefixWatch(etcd.Connection, prefix, NullLogger.Instance) { End = prefix + "~" }, async () =>
        {
            await PutAsync(prefix + "pay_a");
            await PutAsync(prefix + "~in-flight/m/pay_a");
            await PutAsync(prefix + "pay_b");
        }, last: "pay_b");

        Assert.Equal(["put pay_a", "put pay_b"], seen);
    }

    [Fact]
    public async Task APutsOnlyWatch_IsNotSentDeletions_AndAWholeOneIs()
    {
        var prefix = EtcdClusterFixture.NewPrefix();
        async Task Writes()
        {
            await PutAsync(prefix + "m1");
            await etcd.Connection.Client.DeleteAsync(prefix + "m1");
            await PutAsync(prefix + "m2");
        }

        var putsOnly = await WatchWhileAsync(new EtcdPrefixWatch(etcd.Connection, prefix, NullLogger.Instance) { PutsOnly = true }, Writes, last: "m2");
        Assert.Equal(["put m1", "put m2"], putsOnly);

        prefix = EtcdClusterFixture.NewPrefix();
        var whole = await WatchWhileAsync(new EtcdPrefixWatch(etcd.Connection, prefix, NullLogger.Instance), Writes, last: "m2");
        Assert.Equal(["put m1", "delete m1", "put m2"], whole);
    }

    [Fact]
    public void AnEndOutsideThePrefix_IsRefused_WhenTheWatchIsMade()
    {
        Assert.Throws<ArgumentException>(() => new EtcdPrefixWatch(etcd.Connection, "/a/", NullLogger.Instance) { End = "/b/" });
        Assert.Throws<ArgumentException>(() => new EtcdPrefixWatch(etcd.Connection, "/a/", NullLogger.Instance) { End = "/a/" });
    }

    [Fact]
    public async Task AMirror_IsSentWhatChangedAfterItsLoad_AndLoadsAgain_WhenTheLoadsRevisionWasCompacted()
    {
        using var timeout = new CancellationTokenSource(Bound);
        var prefix = EtcdClusterFixture.NewPrefix();
        var old = (await etcd.Connection.Client.PutAsync(prefix + "a", "1")).Header.Revision;
        var loads = 0;
        var reloaded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        async Task<long> LoadAsync(CancellationToken cancellationToken)
        {
            if (++loads == 1)
            {
                // What the first load read is gone from etcd's history by the time the watch opens.
                var now = (await etcd.Connection.Client.PutAsync(prefix + "a", "2")).Header.Revision;
                await etcd.Connection.Kv.CompactAsync(new Etcdserverpb.CompactionRequest { Revision = now }, cancellationToken: cancellationToken);
                return old - 1; // the watch would start at `old`, compacted (etcd keeps `now` itself)
            }

            var current = await etcd.Connection.Kv.RangeAsync(new Etcdserverpb.RangeRequest { Key = ByteString.CopyFromUtf8(prefix + "a") }, cancellationToken: cancellationToken);
            reloaded.TrySetResult();
            return current.Header.Revision;
        }

        var changes = Channel.CreateUnbounded<string>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
        var running = new EtcdPrefixWatch(etcd.Connection, prefix, NullLogger.Instance).RunMirrorAsync(
            LoadAsync, (key, value, _) => changes.Writer.TryWrite((value is null ? "delete " : "put ") + key), stop.Token);
        await reloaded.Task.WaitAsync(timeout.Token);
        await PutAsync(prefix + "b");

        Assert.Equal("put b", await changes.Reader.ReadAsync(timeout.Token)); // not the put of a=2: the second load had it
        Assert.Equal(2, loads);
        await stop.CancelAsync();
        await running.WaitAsync(Bound); // a stopped mirror ends quietly
    }

    /// <summary>A handler that throws something the watch does not expect (a value it cannot read) no longer ends the
    /// watch for good: it reopens, with its backoff, says so (its start: subscribers read again), and later changes
    /// arrive. The API key mirror's watch ended so, and that replica then asked etcd for every request's key.</summary>
    [Fact]
    public async Task AHandlerFault_ReopensTheWatch_AndLaterChangesArrive()
    {
        using var timeout = new CancellationTokenSource(Bound);
        var prefix = EtcdClusterFixture.NewPrefix();
        var starts = 0;
        var (started, reopened) = (NewSignal(), NewSignal());
        var changes = Channel.CreateUnbounded<string>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
        var running = new EtcdPrefixWatch(etcd.Connection, prefix, NullLogger.Instance).RunWithValuesAsync(
            () => (Interlocked.Increment(ref starts) == 1 ? started : reopened).TrySetResult(),
            (key, _) => changes.Writer.TryWrite(key == "poison" ? throw new FormatException("a value this handler cannot read") : key),
            stop.Token);
        await started.Task.WaitAsync(timeout.Token);
        await PutAsync(prefix + "poison");
        await reopened.Task.WaitAsync(timeout.Token);
        await PutAsync(prefix + "after");

        Assert.Equal("after", await changes.Reader.ReadAsync(timeout.Token));
        Assert.False(running.IsCompleted, "The watch ended after the handler's fault.");
        await stop.CancelAsync();
        try
        {
            await running.WaitAsync(Bound);
        }
        catch (Exception exception) when (exception is Grpc.Core.RpcException or OperationCanceledException)
        {
            // the stream ends with the cancellation
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private Task PutAsync(string key) => etcd.Connection.Client.PutAsync(key, "v");

    /// <summary>What the watch passed on (in order) from its start until the put of <paramref name="last"/> arrived.</summary>
    private static async Task<List<string>> WatchWhileAsync(EtcdPrefixWatch watch, Func<Task> writes, string last)
    {
        using var timeout = new CancellationTokenSource(Bound);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var changes = Channel.CreateUnbounded<string>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
        var running = watch.RunWithValuesAsync(
            () => started.TrySetResult(),
            (key, value) => changes.Writer.TryWrite((value is null ? "delete " : "put ") + key),
            stop.Token);
        await started.Task.WaitAsync(timeout.Token);
        await writes();
        var seen = new List<string>();
        while (seen.LastOrDefault() != "put " + last)
        {
            seen.Add(await changes.Reader.ReadAsync(timeout.Token));
        }

        await stop.CancelAsync();
        try
        {
            await running.WaitAsync(Bound);
        }
        catch (Exception exception) when (exception is Grpc.Core.RpcException or OperationCanceledException)
        {
            // the stream ends with the cancellation, as a subscriber's does when its app stops
        }

        return seen;
    }
}

/// <summary>A watch that runs only while requests wait (the Idempotency-Key waiters'): a waiter starts it, the start
/// wakes the waiter to read again, changes reach it while it runs, and it stops once nobody has waited for the idle
/// time — then a new waiter starts it again.</summary>
[Collection(EtcdCollection.Name)]
public sealed class EtcdKeyChangesTests(EtcdClusterFixture etcd)
{
    private static readonly TimeSpan Idle = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task AnIdleStoppedWatch_RunsWhileRequestsWait_AndStopsWhenNoneDid()
    {
        using var timeout = new CancellationTokenSource(Bound);
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        var prefix = EtcdClusterFixture.NewPrefix();
        var changes = new EtcdKeyChanges(etcd.Connection, prefix, NullLogger.Instance, maxWaiters: 4, idleWatch: Idle, time: time);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
        var running = changes.RunAsync(stop.Token);
        Assert.False(changes.IsWatching);
        Assert.Equal(0, changes.WatchStarts);

        var place = changes.TryEnter();
        Assert.NotNull(place);
        Assert.Null(await changes.NextChangeAsync(prefix + "k").WaitAsync(timeout.Token)); // woken by the start: read again
        Assert.Equal(1, changes.WatchStarts);
        var change = changes.NextChangeAsync(prefix + "k");
        await etcd.Connection.Client.PutAsync(prefix + "k", "v1");
        Assert.Equal("v1", (await change.WaitAsync(timeout.Token))?.ToStringUtf8());

        var second = changes.TryEnter(); // a second waiter mid-session
        time.Advance(Idle * 3); // waiters still wait: the watch goes on
        Assert.Equal("v2", (await PutAndSeeAsync(changes, prefix + "k", "v2", timeout.Token))?.ToStringUtf8());

        place.Dispose();
        second?.Dispose();
        while (changes.IsWatching)
        {
            time.Advance(Idle);
            await Task.Delay(TimeSpan.FromMilliseconds(10), timeout.Token); // polls, bounded by the test's timeout
        }

        using (var again = changes.TryEnter())
        {
            Assert.Null(await changes.NextChangeAsync(prefix + "k").WaitAsync(timeout.Token));
            Assert.Equal(2, changes.WatchStarts);
            Assert.Equal("v3", (await PutAndSeeAsync(changes, prefix + "k", "v3", timeout.Token))?.ToStringUtf8());
        }

        await stop.CancelAsync();
        await running.WaitAsync(Bound);
    }

    [Fact]
    public void AnIdleStopOfZero_IsRefused_WhenMade() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new EtcdKeyChanges(etcd.Connection, "/a/", NullLogger.Instance, maxWaiters: 1, idleWatch: TimeSpan.Zero));

    private async Task<ByteString?> PutAndSeeAsync(EtcdKeyChanges changes, string key, string value, CancellationToken cancellationToken)
    {
        var change = changes.NextChangeAsync(key);
        await etcd.Connection.Client.PutAsync(key, value);
        return await change.WaitAsync(cancellationToken);
    }
}

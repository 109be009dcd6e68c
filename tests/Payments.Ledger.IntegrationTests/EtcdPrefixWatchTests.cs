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
            await running;
        }
        catch (Exception exception) when (exception is Grpc.Core.RpcException or OperationCanceledException)
        {
            // the stream ends with the cancellation, as a subscriber's does when its app stops
        }

        return seen;
    }
}

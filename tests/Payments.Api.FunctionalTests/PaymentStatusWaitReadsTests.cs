using Microsoft.Extensions.Logging.Abstractions;
using Payments.Api.Apis;
using Payments.Domain;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Client.Records;

namespace Payments.Api.FunctionalTests;

/// <summary>A status wait on real etcd: the change that ends it is answered from the watch's event, not read again.</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class PaymentStatusWaitReadsTests(ApiSystemFixture system)
{
    /// <summary>Wait-and-change rounds at most: the first may come before the replica's watch is open (the waiter then
    /// finds the change at its recheck, with a second read).</summary>
    private const int MaxRounds = 10;

    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task AWaitEndedByTheOutcome_IsAnsweredFromTheWatch_AfterOneRead()
    {
        var records = new PaymentRecordStore(system.Etcd, $"/functional-waits/{Guid.NewGuid():N}/");
        using var waits = new PaymentStatusWaits(records, system.Etcd, TimeProvider.System, NullLogger<PaymentStatusWaits>.Instance);
        await waits.StartAsync(CancellationToken.None);
        try
        {
            var readsPerRound = new List<int>();
            while (!readsPerRound.Contains(1))
            {
                Assert.True(readsPerRound.Count < MaxRounds, $"Every wait read more than once: {string.Join(", ", readsPerRound)}");
                readsPerRound.Add(await WaitForTheOutcomeAsync(records, waits));
            }
        }
        finally
        {
            await waits.StopAsync(CancellationToken.None);
        }
    }

    /// <summary>The replica's places for waiting requests were shared by all merchants: one key asking ?wait=30 at
    /// its rate filled them, and everyone else's waits were answered at once. A merchant holds at most a quarter.</summary>
    [Fact]
    public async Task OneMerchant_HoldsAtMostAQuarterOfTheWaits_AndAnotherStillWaits()
    {
        var records = new PaymentRecordStore(system.Etcd, $"/functional-waits/{Guid.NewGuid():N}/");
        using var waits = new PaymentStatusWaits(records, system.Etcd, TimeProvider.System, NullLogger<PaymentStatusWaits>.Instance);
        await waits.StartAsync(CancellationToken.None);
        using var stop = new CancellationTokenSource();
        var order = new PaymentOrder($"pay_{Guid.NewGuid():N}", "hog", "acct-d", "acct-c", 100, "USD", null);
        var pending = PaymentRecord.Accepted(order, DateTimeOffset.UtcNow);
        Task<PaymentRecord?> Wait(string merchant) => waits.WaitAsync(order.PaymentId, PaymentStatus.Pending, Bound,
            _ => Task.FromResult<PaymentRecord?>(pending), record => record, stop.Token, merchant);
        var held = new List<Task<PaymentRecord?>>();
        try
        {
            held.AddRange(Enumerable.Range(0, PaymentStatusWaits.MaxWaitersPerMerchant).Select(_ => Wait("hog")));
            await WaitUntilAsync(() => waits.Waiting == PaymentStatusWaits.MaxWaitersPerMerchant);

            // Past its share: the current status, no place taken (a place would have held it for the wait's 30 s).
            var answeredAtOnce = await Wait("hog").WaitAsync(Bound / 3);
            held.Add(Wait("someone-else"));
            await WaitUntilAsync(() => waits.Waiting == PaymentStatusWaits.MaxWaitersPerMerchant + 1);

            Assert.Equal(PaymentStatus.Pending, answeredAtOnce?.Status);
            Assert.All(held, task => Assert.False(task.IsCompleted));
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(held.Select(task => task.ContinueWith(_ => { }, TaskScheduler.Default)));
            await waits.StopAsync(CancellationToken.None);
        }
    }

    /// <summary>Found in review: a wait held its replica's shutdown, and the pod's drain, for up to its 30 s. The
    /// replica's stop answers every wait with the status as it stands, and a wait asked for after it is answered at
    /// once (the client asks again and reaches a replica that stays).</summary>
    [Fact]
    public async Task AReplicaStopping_AnswersItsWaitsAtOnce_WithTheStatusAsItStands()
    {
        var records = new PaymentRecordStore(system.Etcd, $"/functional-waits/{Guid.NewGuid():N}/");
        var lifetime = new Microsoft.Extensions.Hosting.Internal.ApplicationLifetime(NullLogger<Microsoft.Extensions.Hosting.Internal.ApplicationLifetime>.Instance);
        using var waits = new PaymentStatusWaits(records, system.Etcd, TimeProvider.System, NullLogger<PaymentStatusWaits>.Instance, lifetime);
        await waits.StartAsync(CancellationToken.None);
        var order = new PaymentOrder($"pay_{Guid.NewGuid():N}", "m", "acct-d", "acct-c", 100, "USD", null);
        var pending = PaymentRecord.Accepted(order, DateTimeOffset.UtcNow);
        Task<PaymentRecord?> Wait() => waits.WaitAsync(order.PaymentId, PaymentStatus.Pending, Bound,
            _ => Task.FromResult<PaymentRecord?>(pending), record => record, CancellationToken.None, "m");
        try
        {
            var waiting = Wait();
            await WaitUntilAsync(() => waits.Waiting == 1);

            lifetime.StopApplication();
            Assert.Equal(PaymentStatus.Pending, (await waiting.WaitAsync(Bound / 3))?.Status);
            Assert.Equal(PaymentStatus.Pending, (await Wait().WaitAsync(Bound / 3))?.Status);
            Assert.Equal(0, waits.Waiting);
        }
        finally
        {
            await waits.StopAsync(CancellationToken.None);
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(waited.Elapsed < Bound, "The waits did not reach the expected count in time.");
            await Task.Delay(TimeSpan.FromMilliseconds(10));
        }
    }

    [Fact]
    public async Task AWaitFromTheStatusTheWatchShowed_ReadsNothing_AndEndsWithTheChange()
    {
        var records = new PaymentRecordStore(system.Etcd, $"/functional-waits/{Guid.NewGuid():N}/");
        using var waits = new PaymentStatusWaits(records, system.Etcd, TimeProvider.System, NullLogger<PaymentStatusWaits>.Instance);
        await waits.StartAsync(CancellationToken.None);
        try
        {
            var order = new PaymentOrder($"pay_{Guid.NewGuid():N}", "merchant-w", "acct-d", "acct-c", 100, "USD", null);
            var accepted = PaymentRecord.Accepted(order, DateTimeOffset.UtcNow);
            await records.CreateAsync(accepted, CancellationToken.None);
            using var bound = new CancellationTokenSource(Bound);
            for (var round = 1; !waits.HasSeen(order.PaymentId); round++)
            {
                // The replica's watch may open after the record was written (it starts from "now", busy CI): write the
                // same record again until the watch has delivered it.
                await Task.Delay(TimeSpan.FromMilliseconds(20), bound.Token);
                if (round % 10 == 0)
                {
                    await system.Etcd.Kv.PutAsync(new Etcdserverpb.PutRequest
                    {
                        Key = Payments.Etcd.EtcdBytes.Key(records.KeyOf(order.PaymentId)),
                        Value = Google.Protobuf.ByteString.CopyFromUtf8(PaymentRecordStore.ToJson(accepted)),
                    }, cancellationToken: bound.Token);
                }
            }

            // Another merchant's wait from the same status reads (and finds nothing of its own): what the watch showed is not its.
            var otherReads = 0;
            Assert.Null(await waits.WaitAsync(order.PaymentId, PaymentStatus.Pending, Bound,
                _ =>
                {
                    Interlocked.Increment(ref otherReads);
                    return Task.FromResult<PaymentRecord?>(null);
                },
                record => PaymentServices.VisibleTo(record, "merchant-other"), CancellationToken.None));
            Assert.Equal(1, otherReads);

            var reads = 0;
            var waiting = waits.WaitAsync(order.PaymentId, PaymentStatus.Pending, Bound,
                async cancellationToken =>
                {
                    Interlocked.Increment(ref reads);
                    return (await records.GetAsync(order.PaymentId, cancellationToken))?.Record;
                },
                record => PaymentServices.VisibleTo(record, "merchant-w"), CancellationToken.None);
            while (waits.Waiting == 0)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(10), bound.Token);
            }

            await records.RecordOutcomeAsync(order.PaymentId, PaymentOutcome.Completed(), DateTimeOffset.UtcNow, CancellationToken.None);
            var answer = await waiting.WaitAsync(Bound);

            Assert.Equal(PaymentStatus.Completed, answer?.Status);
            Assert.Equal(0, reads);
        }
        finally
        {
            await waits.StopAsync(CancellationToken.None);
        }
    }

    /// <summary>Waits on a pending payment, records its outcome, and returns how many reads the wait made.</summary>
    private static async Task<int> WaitForTheOutcomeAsync(PaymentRecordStore records, PaymentStatusWaits waits)
    {
        var order = new PaymentOrder($"pay_{Guid.NewGuid():N}", "merchant-w", "acct-d", "acct-c", 100, "USD", null);
        await records.CreateAsync(PaymentRecord.Accepted(order, DateTimeOffset.UtcNow), CancellationToken.None);
        var reads = 0;
        var waiting = waits.WaitAsync(order.PaymentId, from: null, Bound,
            async cancellationToken =>
            {
                Interlocked.Increment(ref reads);
                return (await records.GetAsync(order.PaymentId, cancellationToken))?.Record;
            },
            record => PaymentServices.VisibleTo(record, "merchant-w"), CancellationToken.None);
        using (var first = new CancellationTokenSource(Bound))
        {
            while (Volatile.Read(ref reads) == 0)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(10), first.Token); // the waiter has read; the change comes after
            }
        }

        await records.RecordOutcomeAsync(order.PaymentId, PaymentOutcome.Completed(), DateTimeOffset.UtcNow, CancellationToken.None);
        var answer = await waiting.WaitAsync(Bound);

        Assert.Equal(PaymentStatus.Completed, answer?.Status);
        return reads;
    }
}

using Etcdserverpb;
using Microsoft.Azure.Cosmos;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Payments.Cosmos;
using Payments.Etcd;
using Payments.Etcd.Regions;
using Payments.Failover.Core;
using Payments.LocalCluster;
using Payments.Testing;

namespace Payments.Failover.IntegrationTests;

/// <summary>A real etcd cluster (one key prefix per region's "etcd") and the local Cosmos-compatible server.</summary>
public sealed class FailoverFixture : EtcdClusterFixture, IAsyncLifetime
{
    public LocalCosmosServer Cosmos { get; private set; } = null!;

    async Task IAsyncLifetime.InitializeAsync()
    {
        await InitializeAsync();
        Cosmos = await LocalCosmosServer.StartAsync(CancellationToken.None);
    }

    async Task IAsyncLifetime.DisposeAsync()
    {
        if (Cosmos is not null)
        {
            await Cosmos.DisposeAsync();
        }

        await DisposeAsync();
    }

    public CosmosSettings Settings(int? port = null) => new()
    {
        Endpoint = new Uri($"https://127.0.0.1:{port ?? Cosmos.Port}/"),
        Key = LocalCosmosServer.Key,
        LimitToEndpoint = true,
        AcceptAnyServerCertificate = true, // the local server's self-signed certificate; tests only
        Database = "daprpayments-tests",
    };

    /// <summary>One failover process of region <paramref name="name"/> on <paramref name="container"/> (its own Cosmos
    /// client); two calls with one name are two processes of one region, sharing its etcd prefix.</summary>
    /// <param name="etcd">The region's etcd connection (null: the fixture's, straight to the cluster).</param>
    /// <param name="leaseDuration">The region's lease (null: the default). The epoch mirror's etcd lease runs on real
    /// time for what is left of it on the fake clock: a test whose assertion must outlast calls through a cut proxy
    /// takes a long one, so a slow machine does not expire the mirror under it.</param>
    public (RegionLeaseManager Manager, RegionEpochMirror Mirror) Region(
        Container container, List<IDisposable> disposables, string name, RegionRole role, TimeProvider clock, int? cosmosPort = null, string? peerRegion = null,
        EtcdConnection? etcd = null, TimeSpan? leaseDuration = null)
    {
        var client = Settings(cosmosPort).CreateClient();
        disposables.Add(client);
        var regionContainer = client.GetContainer(container.Database.Id, container.Id);
        var mirror = new RegionEpochMirror(etcd ?? Connection, $"/test/{container.Id}/{name}/");
        var options = new RegionLeaseOptions { Name = name, Role = role };
        options.LeaseDuration = leaseDuration ?? options.LeaseDuration;
        options.Validate();
        return (new RegionLeaseManager(options, new ActiveRegionStore(regionContainer, serverErrorMeansMissing: true), mirror, clock, NullLogger.Instance) { PeerRegion = peerRegion }, mirror);
    }
}

[CollectionDefinition(Name)]
public sealed class FailoverCollection : ICollectionFixture<FailoverFixture>
{
    public const string Name = "failover";
}

/// <summary>ARCHITECTURE §2 invariant 6 (one active region) on real parts: the lease record in the Cosmos-compatible
/// server, each region's epoch mirror in etcd, each region's decisions on its own clock (fake, so the timeline is
/// exact and nothing sleeps).</summary>
[Collection(FailoverCollection.Name)]
public sealed class RegionLeaseTests(FailoverFixture fixture) : IAsyncLifetime
{
    private static readonly RegionLeaseOptions Defaults = new();
    private readonly List<IDisposable> disposables = [];
    private Container container = null!;

    public async Task InitializeAsync()
    {
        var client = fixture.Settings().CreateClient();
        disposables.Add(client);
        container = await CosmosSettings.EnsureContainerAsync(client, "daprpayments-tests", $"control-{Guid.NewGuid():N}", CancellationToken.None);
    }

    public Task DisposeAsync()
    {
        disposables.ForEach(disposable => disposable.Dispose());
        return Task.CompletedTask;
    }

    [Fact]
    public async Task FirstActiveRegion_TakesEpochOne_AndTheStandbyStaysStandby()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-29T12:00:00Z"));
        var a = Region("region-a", RegionRole.Active, clock);
        var b = Region("region-b", RegionRole.Standby, clock);

        await a.Manager.TickAsync(CancellationToken.None);
        await b.Manager.TickAsync(CancellationToken.None);

        Assert.Equal((RegionRole.Active, 1L), (a.Manager.Role, a.Manager.Epoch));
        Assert.True(a.Manager.IsWritable);
        Assert.Equal(1, await a.Mirror.ReadAsync(CancellationToken.None));
        Assert.Equal(RegionRole.Standby, b.Manager.Role);
        Assert.Null(await b.Mirror.ReadAsync(CancellationToken.None));
    }

    /// <summary>A planned switchover whose drain does not end (replication cannot catch up) is abandoned within the
    /// region's lease, renewed first: nothing renews the lease while the hand-over holds the tick's turn, and a drain
    /// allowed 30 s outlived the 10 s lease — the other region then took over by expiry, with the tail unshipped.</summary>
    [Fact]
    public async Task ASwitchoverWhoseDrainDoesNotEnd_IsAbandonedWithinTheLease_AndTheRegionKeepsIt()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-29T12:00:00Z"));
        var a = Region("region-a", RegionRole.Active, clock);
        var b = Region("region-b", RegionRole.Standby, clock);
        await a.Manager.TickAsync(CancellationToken.None);
        var draining = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        a.Manager.BeforeHandOver = async cancellationToken =>
        {
            draining.TrySetResult();
            await Task.Delay(Timeout.InfiniteTimeSpan, cancellationToken); // never caught up
        };
        clock.Advance(TimeSpan.FromSeconds(6)); // most of the first lease gone, as between two renewals
        var handOver = a.Manager.HandOverAsync("region-b", TimeSpan.Zero, CancellationToken.None);
        await draining.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var startedAt = clock.GetUtcNow();

        var options = new RegionLeaseOptions();
        clock.Advance(options.LeaseDuration - options.DemoteMargin);
        Assert.Equal(HandOverOutcome.Abandoned, (await handOver.WaitAsync(TimeSpan.FromSeconds(30))).Outcome);
        await b.Manager.TickAsync(CancellationToken.None);
        Assert.Equal(RegionRole.Standby, b.Manager.Role); // the lease, renewed at the hand-over, has not run out
        Assert.Equal(("region-a", 1L), (b.Manager.LastSeen!.ActiveRegion, b.Manager.LastSeen.Epoch));
        Assert.True(b.Manager.LastSeen.LeaseUntil >= startedAt + options.LeaseDuration - TimeSpan.FromSeconds(1), $"lease until {b.Manager.LastSeen.LeaseUntil:O}");
        await a.Manager.TickAsync(CancellationToken.None); // and the region resumes writing
        Assert.True(a.Manager.IsWritable);
        Assert.Equal(1, await a.Mirror.ReadAsync(CancellationToken.None));
    }

    [Fact]
    public async Task StandbyPromotes_OnlyAfterTheLeasePlusItsMargin_AndTheOldRegionDemotesWhenItReturns()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-29T12:00:00Z"));
        var a = Region("region-a", RegionRole.Active, clock);
        var b = Region("region-b", RegionRole.Standby, clock);
        await a.Manager.TickAsync(CancellationToken.None);
        var leaseUntil = a.Manager.LastSeen!.LeaseUntil;

        // Region A goes silent. Just before its lease plus the promotion margin, B must still wait.
        clock.SetUtcNow(leaseUntil + Defaults.PromotionMargin);
        await b.Manager.TickAsync(CancellationToken.None);
        Assert.Equal(RegionRole.Standby, b.Manager.Role);
        Assert.False(a.Manager.IsWritable); // A's own deadline passed long before

        clock.Advance(TimeSpan.FromMilliseconds(1));
        await b.Manager.TickAsync(CancellationToken.None);
        Assert.Equal((RegionRole.Active, 2L), (b.Manager.Role, b.Manager.Epoch));
        Assert.Equal(2, await b.Mirror.ReadAsync(CancellationToken.None));

        // A comes back: it sees B's higher epoch and stays passive; its etcd no longer mirrors any epoch.
        await a.Manager.TickAsync(CancellationToken.None);
        Assert.Equal(RegionRole.Standby, a.Manager.Role);
        Assert.Null(await a.Mirror.ReadAsync(CancellationToken.None));
        Assert.Equal(("region-b", 2L), (a.Manager.LastSeen!.ActiveRegion, a.Manager.LastSeen.Epoch));
    }

    [Fact]
    public async Task PromotedRegion_WritesOnlyAfterCatchingUpWithThePreviousRegionsJournal()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-29T12:00:00Z"));
        var a = Region("region-a", RegionRole.Active, clock);
        var b = Region("region-b", RegionRole.Standby, clock);
        await a.Manager.TickAsync(CancellationToken.None);
        var catchUps = new List<string>();
        b.Manager.CatchUp = (previous, _) =>
        {
            catchUps.Add(previous);
            return catchUps.Count == 1 ? Task.FromException(new TimeoutException("Cosmos slow")) : Task.CompletedTask;
        };

        clock.SetUtcNow(a.Manager.LastSeen!.LeaseUntil + Defaults.PromotionMargin + TimeSpan.FromSeconds(1));
        await b.Manager.TickAsync(CancellationToken.None); // wins the record, but the catch-up fails
        Assert.Equal(("region-b", 2L), (b.Manager.LastSeen!.ActiveRegion, b.Manager.LastSeen.Epoch));
        Assert.False(b.Manager.IsWritable);
        Assert.Null(await b.Mirror.ReadAsync(CancellationToken.None));

        clock.Advance(Defaults.RenewInterval);
        await b.Manager.TickAsync(CancellationToken.None); // renews its lease and catches up: now it writes
        Assert.True(b.Manager.IsWritable);
        Assert.Equal(2, await b.Mirror.ReadAsync(CancellationToken.None));
        Assert.Equal(["region-a", "region-a"], catchUps);
        Assert.Null(b.Manager.CatchingUpFrom);
    }

    /// <summary>The catch-up after a promotion lives in the failover process's memory: a process that starts while its
    /// region holds the record (a pod restarted mid catch-up) mirrored the epoch at once, and the region wrote without
    /// the previous region's tail. It now applies the peer's journal first.</summary>
    [Fact]
    public async Task AProcessStartingWhileItsRegionHoldsTheRecord_CatchesUpWithThePeerBeforeWriting()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-29T12:00:00Z"));
        var a = Region("region-a", RegionRole.Active, clock);
        var b = Region("region-b", RegionRole.Standby, clock);
        await a.Manager.TickAsync(CancellationToken.None);
        b.Manager.CatchUp = (_, _) => Task.FromException(new TimeoutException("Cosmos slow"));
        clock.SetUtcNow(a.Manager.LastSeen!.LeaseUntil + Defaults.PromotionMargin + TimeSpan.FromSeconds(1));
        await b.Manager.TickAsync(CancellationToken.None); // wins the record; its catch-up has not finished when it dies
        Assert.False(b.Manager.IsWritable);

        var catchUps = new List<string>();
        var (restarted, mirror) = Region("region-b", RegionRole.Standby, clock, peerRegion: "region-a");
        restarted.CatchUp = (previous, _) =>
        {
            catchUps.Add(previous);
            return catchUps.Count == 1 ? Task.FromException(new TimeoutException("Cosmos slow")) : Task.CompletedTask;
        };

        await restarted.TickAsync(CancellationToken.None);
        Assert.False(restarted.IsWritable);
        Assert.Null(await mirror.ReadAsync(CancellationToken.None));
        clock.Advance(Defaults.RenewInterval);
        await restarted.TickAsync(CancellationToken.None);
        Assert.True(restarted.IsWritable);
        Assert.Equal(["region-a", "region-a"], catchUps);
    }

    /// <summary>Found in review: every restart of a failover pod in the active region drained the peer's journal
    /// again, though the region had caught up when it took the record: after a region loss, the returned region ships
    /// the tail it wrote and never shipped, and a routine restart then applied it over this region's newer records. A
    /// process that finds its region has held the record's epoch applies nothing.</summary>
    [Fact]
    public async Task AProcessStartingWhileItsRegionHasHeldTheEpoch_DoesNotApplyThePeersJournalAgain()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-29T12:00:00Z"));
        var a = Region("region-a", RegionRole.Active, clock);
        var b = Region("region-b", RegionRole.Standby, clock);
        await a.Manager.TickAsync(CancellationToken.None);
        clock.SetUtcNow(a.Manager.LastSeen!.LeaseUntil + Defaults.PromotionMargin + TimeSpan.FromSeconds(1));
        await b.Manager.TickAsync(CancellationToken.None); // took the record and caught up
        Assert.True(b.Manager.IsWritable);

        var catchUps = new List<string>();
        var (restarted, _) = Region("region-b", RegionRole.Standby, clock, peerRegion: "region-a");
        restarted.CatchUp = (previous, _) =>
        {
            catchUps.Add(previous);
            return Task.CompletedTask;
        };
        clock.Advance(Defaults.RenewInterval);
        await restarted.TickAsync(CancellationToken.None);

        Assert.True(restarted.IsWritable);
        Assert.Empty(catchUps);
    }

    /// <summary>Found in review: a region runs two failover processes. Both saw the record move to their region; the
    /// first caught up and held the epoch, after which the region's copy of the peer's journal refuses every write
    /// (the region holds an epoch), so the second's catch-up failed on every tick for good: it renewed a lease it could
    /// not use, and when the first process went, the region had no writer and the other region could not take over.
    /// A process whose region has held the epoch already knows the catch-up is done.</summary>
    [Fact]
    public async Task ASecondProcessOfARegionThatCaughtUp_DoesNotCatchUpAgain_AndHoldsTheEpoch()
    {
        var (clock, a) = await RegionAActiveAsync();
        var first = Region("region-b", RegionRole.Standby, clock);
        var second = Region("region-b", RegionRole.Standby, clock);
        await first.Manager.TickAsync(CancellationToken.None);
        await second.Manager.TickAsync(CancellationToken.None); // both have seen region-a active
        var secondsCatchUps = 0;
        second.Manager.CatchUp = (_, _) =>
        {
            secondsCatchUps++;
            return Task.FromException(new InvalidOperationException("region-b holds an epoch: no copy of region-a's journal")); // as JournalApplier refuses
        };

        PastItsLease(clock, a.Manager);
        await first.Manager.TickAsync(CancellationToken.None); // promotes, catches up, holds
        Assert.True(first.Manager.IsWritable);
        await second.Manager.TickAsync(CancellationToken.None); // sees the record handed to its region

        Assert.Equal(0, secondsCatchUps);
        Assert.Null(second.Manager.CatchingUpFrom);
        Assert.True(second.Manager.IsWritable);
    }

    /// <summary>Found in review: the region configured active created the record with epoch 1 whenever it was missing,
    /// at once — lost later (deleted by hand, a container re-created, an account restored), that made a second writer
    /// while the region holding the lease wrote to its deadline, and an epoch below the one that region mirrored. It is
    /// created again only after a whole lease and the promotion margin, above every epoch the region knows of, and the
    /// region that held it demotes.</summary>
    [Fact]
    public async Task ALostRecord_IsMadeAgain_OnlyAfterALeaseAndItsMargin_WithAHigherEpoch()
    {
        var (clock, a) = await RegionAActiveAsync();
        var b = Region("region-b", RegionRole.Standby, clock);
        PastItsLease(clock, a.Manager);
        await b.Manager.TickAsync(CancellationToken.None); // region-b holds epoch 2
        await a.Manager.TickAsync(CancellationToken.None);
        Assert.True(b.Manager.IsWritable);
        Assert.Equal(RegionRole.Standby, a.Manager.Role);

        await container.DeleteItemAsync<ActiveRegionRecord>(ActiveRegionRecord.DocumentId, new PartitionKey(ActiveRegionRecord.DocumentId));
        await a.Manager.TickAsync(CancellationToken.None);
        await b.Manager.TickAsync(CancellationToken.None); // cannot renew: writes only to its deadline
        clock.Advance(Defaults.LeaseDuration + Defaults.PromotionMargin - TimeSpan.FromSeconds(1));
        await a.Manager.TickAsync(CancellationToken.None);
        var missing = await Assert.ThrowsAsync<CosmosException>(() => new ActiveRegionStore(container, serverErrorMeansMissing: true).ReadAsync(CancellationToken.None));
        Assert.Equal(System.Net.HttpStatusCode.NotFound, missing.StatusCode);
        Assert.False(b.Manager.IsWritable); // past its deadline before the record can be made again

        clock.Advance(TimeSpan.FromSeconds(2));
        await a.Manager.TickAsync(CancellationToken.None);
        await b.Manager.TickAsync(CancellationToken.None);
        Assert.Equal(("region-a", 3L), (a.Manager.LastSeen!.ActiveRegion, a.Manager.LastSeen.Epoch));
        Assert.Null(await b.Mirror.ReadAsync(CancellationToken.None));
    }

    /// <summary>A failover review: every guard assumes the record's epoch only goes up, and an older copy put back (a
    /// backup, a restored account; the runbook once said "restore the document") is renewed by the region it names as
    /// its own. Raising the epoch by itself was not kept (RegionLeaseManager.Regression.cs says why); a region that
    /// knows a higher epoch says so: here a fresh process of the region named (its etcd says it held 3) and the region
    /// that writes under 4, each once per record epoch.</summary>
    [Fact]
    public async Task AnOlderCopyOfTheRecordPutBack_IsReported_ByEveryRegionThatKnowsAHigherEpoch()
    {
        var (clock, a) = await RegionAActiveAsync();
        var store = new ActiveRegionStore(container, serverErrorMeansMissing: true);
        var (copy, _) = await store.ReadAsync(CancellationToken.None); // the backup: region-a, epoch 1
        var b = Region("region-b", RegionRole.Standby, clock, peerRegion: "region-a");
        foreach (var (taker, holder) in new[] { (b, a), (a, b), (b, a) })
        {
            PastItsLease(clock, holder.Manager);
            await taker.Manager.TickAsync(CancellationToken.None);
            await holder.Manager.TickAsync(CancellationToken.None);
        }

        Assert.Equal((true, 4L), (b.Manager.IsWritable, b.Manager.Epoch));
        Assert.Null(b.Manager.LastRegression);
        var (_, etag) = await store.ReadAsync(CancellationToken.None);
        Assert.NotNull(await store.TryReplaceAsync(copy, etag, CancellationToken.None));

        var (restarted, _) = Region("region-a", RegionRole.Active, clock, peerRegion: "region-b");
        await restarted.TickAsync(CancellationToken.None);
        await b.Manager.TickAsync(CancellationToken.None);

        Assert.Equal((1L, 3L), restarted.LastRegression);
        Assert.Equal((1L, 4L), b.Manager.LastRegression);
    }

    /// <summary>The mirror is held to the region's writable end, never past it: given as a duration, a process paused
    /// between computing it and the hold held the epoch that much longer, into the time the other region may take over.</summary>
    [Fact]
    public async Task TheEpochMirror_IsHeldToItsDeadline_AndNotAtAllWhenTooLittleIsLeft()
    {
        var mirror = new RegionEpochMirror(fixture.Connection, $"/test/{container.Id}/deadline-{Guid.NewGuid():N}/");
        var deadline = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(5);

        Assert.True(await mirror.HoldUntilAsync(1, deadline, TimeProvider.System, CancellationToken.None));
        var until = DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(await fixture.Connection.Client.GetValAsync(mirror.UntilKey), System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(until <= deadline, $"held until {until:O}, past the deadline {deadline:O}");
        await mirror.ReleaseAsync(CancellationToken.None);

        Assert.False(await mirror.HoldUntilAsync(1, DateTimeOffset.UtcNow + RegionEpochMirror.MinHold / 2, TimeProvider.System, CancellationToken.None));
        Assert.Null(await mirror.ReadAsync(CancellationToken.None));
    }

    [Fact]
    public async Task StandbyFindingAnEpochStillMirroredInItsEtcd_RemovesIt()
    {
        // Region A was active, lost its lease while its etcd was down, and its etcd came back with the mirror's lease
        // restarted (etcd restarts lease TTLs on restart): the returning failover service must not leave it there.
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-29T12:00:00Z"));
        var a = Region("region-a", RegionRole.Active, clock);
        var b = Region("region-b", RegionRole.Standby, clock);
        await a.Manager.TickAsync(CancellationToken.None);
        clock.SetUtcNow(a.Manager.LastSeen!.LeaseUntil + Defaults.PromotionMargin + TimeSpan.FromSeconds(1));
        await b.Manager.TickAsync(CancellationToken.None);
        Assert.True(b.Manager.IsWritable);
        Assert.True(await a.Mirror.HoldAsync(1, TimeSpan.FromSeconds(30), CancellationToken.None)); // the stale mirror
        var returned = Region("region-a", RegionRole.Active, clock); // a new process of region A's failover service

        await returned.Manager.TickAsync(CancellationToken.None);

        Assert.Equal(RegionRole.Standby, returned.Manager.Role);
        Assert.Null(await a.Mirror.ReadAsync(CancellationToken.None));
    }

    [Fact]
    public async Task TwoStandbysTakingTheSameExpiredRecord_ExactlyOneWins()
    {
        var store = new ActiveRegionStore(container);
        await store.BootstrapAsync("region-a", DateTimeOffset.Parse("2026-11-29T12:00:00Z"), CancellationToken.None);
        var (record, etag) = await store.ReadAsync(CancellationToken.None);

        var attempts = await Task.WhenAll(
            store.TryReplaceAsync(record with { ActiveRegion = "region-b", Epoch = 2 }, etag, CancellationToken.None),
            store.TryReplaceAsync(record with { ActiveRegion = "region-c", Epoch = 2 }, etag, CancellationToken.None));

        Assert.Single(attempts, attempt => attempt is not null);
        var (winner, _) = await store.ReadAsync(CancellationToken.None);
        Assert.Equal(2, winner.Epoch);
    }

    [Fact]
    public async Task ActiveRegionCutOffFromCosmos_StopsWriting_BeforeTheStandbyMayPromote_EvenWithClockSkew()
    {
        await using var proxy = new TcpProxy(fixture.Cosmos.Port);
        var clockA = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-29T12:00:00Z"));
        // B's clock runs ahead by the documented bound: the worst case for an early promotion.
        var clockB = new FakeTimeProvider(clockA.GetUtcNow() + Defaults.MaxClockSkew);
        var a = Region("region-a", RegionRole.Active, clockA, proxy.Port);
        var b = Region("region-b", RegionRole.Standby, clockB);
        await a.Manager.TickAsync(CancellationToken.None);
        Assert.True(a.Manager.IsWritable);

        proxy.Cut(); // A is alive but cannot reach Cosmos
        DateTimeOffset? aStoppedAt = null;
        DateTimeOffset? bPromotedAt = null;
        for (var tick = 0; tick < 20 && bPromotedAt is null; tick++)
        {
            clockA.Advance(Defaults.RenewInterval);
            clockB.Advance(Defaults.RenewInterval);
            await a.Manager.TickAsync(CancellationToken.None);
            if (!a.Manager.IsWritable)
            {
                aStoppedAt ??= clockA.GetUtcNow();
            }

            await b.Manager.TickAsync(CancellationToken.None);
            if (b.Manager.Role == RegionRole.Active)
            {
                bPromotedAt = clockA.GetUtcNow(); // on A's clock: one timeline
                Assert.False(a.Manager.IsWritable, "Two writable regions: B promoted while A still accepted writes.");
            }
        }

        Assert.NotNull(aStoppedAt);
        Assert.NotNull(bPromotedAt);
        Assert.True(aStoppedAt < bPromotedAt);
        Assert.Equal(RegionRole.Standby, a.Manager.Role);
        Assert.Null(await a.Mirror.ReadAsync(CancellationToken.None)); // A's ledger now refuses every write
        Assert.Equal(2, await b.Mirror.ReadAsync(CancellationToken.None));
    }

    /// <summary>Found in review: an active region whose etcd lost its quorum, its failover service still reaching
    /// Cosmos DB, renewed the lease every tick while it could not write, so the standby never promoted and no payment
    /// went through anywhere until someone stopped that failover service. It now stops renewing once its etcd has not
    /// taken the epoch for YieldAfterEtcdOutage and still does not answer — not at the first failed hold: a leader
    /// election must not give the region away.</summary>
    [Fact]
    public async Task AnActiveRegionWhoseEtcdIsGone_StopsRenewing_AndTheStandbyTakesOver()
    {
        await using var proxy = new TcpProxy(FirstMemberPort());
        using var regionAEtcd = EtcdConnection.Create($"https://127.0.0.1:{proxy.Port}", fixture.Cluster.RootTls);
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-29T12:00:00Z"));
        var a = Region("region-a", RegionRole.Active, clock, etcd: regionAEtcd);
        var b = Region("region-b", RegionRole.Standby, clock);
        await a.Manager.TickAsync(CancellationToken.None);
        Assert.True(a.Manager.IsWritable);

        proxy.Cut(); // A's etcd is gone; A's failover service still reaches Cosmos DB
        var cutAt = clock.GetUtcNow();
        DateTimeOffset? bPromotedAt = null;
        for (var tick = 0; tick < 40 && bPromotedAt is null; tick++)
        {
            clock.Advance(Defaults.RenewInterval);
            await a.Manager.TickAsync(CancellationToken.None);
            await b.Manager.TickAsync(CancellationToken.None);
            if (b.Manager.IsWritable)
            {
                bPromotedAt = clock.GetUtcNow();
                Assert.False(a.Manager.IsWritable, "Two writable regions.");
            }
        }

        Assert.True(bPromotedAt is not null, "The standby never took over from a region that could not write.");
        Assert.True(bPromotedAt - cutAt >= Defaults.YieldAfterEtcdOutage, $"took over {bPromotedAt - cutAt} after the cut: a blip gave the region away");
        Assert.Equal(2, await b.Mirror.ReadAsync(CancellationToken.None));
        proxy.Restore(); // A's etcd back: A stays standby under B's record
        clock.Advance(Defaults.RenewInterval);
        await a.Manager.TickAsync(CancellationToken.None);
        Assert.Equal(RegionRole.Standby, a.Manager.Role);
        Assert.Equal("region-b", a.Manager.LastSeen!.ActiveRegion);
    }

    /// <summary>Found in review: an etcd out of space (NOSPACE) still answers reads but takes no write, the hold
    /// included, so a region that yielded only when its etcd stopped answering kept the lease with nothing writable.
    /// The alarm is raised through etcd's own API (the one its members use when they run out of space), on the
    /// collection's one cluster, and cleared after: both "regions" share it, so the standby's hold waits for that.</summary>
    [Fact]
    public async Task AnActiveRegionWhoseEtcdRefusesWrites_YieldsTheLease_ThoughItsEtcdStillAnswersReads()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-29T12:00:00Z"));
        var a = Region("region-a", RegionRole.Active, clock);
        var b = Region("region-b", RegionRole.Standby, clock);
        await a.Manager.TickAsync(CancellationToken.None);
        Assert.True(a.Manager.IsWritable);
        var maintenance = fixture.Connection.MemberMaintenance(0);
        var member = (await maintenance.StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(10))).Header.MemberId;
        await maintenance.AlarmAsync(new AlarmRequest { Action = AlarmRequest.Types.AlarmAction.Activate, MemberID = member, Alarm = AlarmType.Nospace },
            deadline: DateTime.UtcNow.AddSeconds(10));
        var spaceGoneAt = clock.GetUtcNow();
        DateTimeOffset? recordMovedAt = null;
        try
        {
            for (var tick = 0; tick < 40 && recordMovedAt is null; tick++)
            {
                clock.Advance(Defaults.RenewInterval);
                await a.Manager.TickAsync(CancellationToken.None);
                await b.Manager.TickAsync(CancellationToken.None);
                recordMovedAt = b.Manager.LastSeen?.ActiveRegion == "region-b" ? clock.GetUtcNow() : null;
            }
        }
        finally
        {
            await maintenance.AlarmAsync(new AlarmRequest { Action = AlarmRequest.Types.AlarmAction.Deactivate, MemberID = member, Alarm = AlarmType.Nospace },
                deadline: DateTime.UtcNow.AddSeconds(10));
        }

        Assert.True(recordMovedAt is not null, "The region kept the lease while its etcd refused every write.");
        Assert.True(recordMovedAt - spaceGoneAt >= Defaults.YieldAfterEtcdOutage, $"moved {recordMovedAt - spaceGoneAt} after: a blip gave the region away");
        Assert.False(a.Manager.IsWritable);
        clock.Advance(Defaults.RenewInterval);
        await b.Manager.TickAsync(CancellationToken.None); // space again: the region that took the record writes
        Assert.True(b.Manager.IsWritable);
    }

    /// <summary>Found in review: a region runs two failover processes, each holding the epoch mirror on its own etcd
    /// lease in turn. One whose deadline passed unrenewed (cut off from Cosmos DB, or paused) deleted the mirror
    /// whoever held it, so the region stopped writing although the other process had just renewed it. It now removes
    /// only its own hold.</summary>
    [Fact]
    public async Task AFailoverProcessPastItsDeadline_LeavesTheHoldAnotherProcessOfItsRegionRenewed()
    {
        await using var proxy = new TcpProxy(fixture.Cosmos.Port);
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-29T12:00:00Z"));
        var lease = TimeSpan.FromMinutes(2); // the second's hold (real etcd lease) outlasts the first's calls through the cut proxy
        var first = fixture.Region(container, disposables, "region-a", RegionRole.Active, clock, proxy.Port, leaseDuration: lease);
        var second = fixture.Region(container, disposables, "region-a", RegionRole.Active, clock, leaseDuration: lease);
        await first.Manager.TickAsync(CancellationToken.None);
        await second.Manager.TickAsync(CancellationToken.None); // renewed, and the mirror put again on the second's lease
        Assert.True(first.Manager.IsWritable && second.Manager.IsWritable);

        proxy.Cut(); // the first process no longer reaches Cosmos DB
        clock.Advance(lease - Defaults.DemoteMargin); // its deadline
        await first.Manager.TickAsync(CancellationToken.None);

        Assert.Equal(RegionRole.Standby, first.Manager.Role);
        Assert.Equal(1, await first.Mirror.ReadAsync(CancellationToken.None)); // the second's hold stands: the region writes
    }

    /// <summary>A standby whose own etcd does not answer does not take an expired record: it could not write, and
    /// holding the lease would keep the region that can from it. Once its etcd answers, it does.</summary>
    [Fact]
    public async Task AStandbyWhoseEtcdIsGone_DoesNotTakeAnExpiredRecord_UntilItsEtcdAnswers()
    {
        await using var proxy = new TcpProxy(FirstMemberPort());
        using var regionBEtcd = EtcdConnection.Create($"https://127.0.0.1:{proxy.Port}", fixture.Cluster.RootTls);
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-29T12:00:00Z"));
        var a = Region("region-a", RegionRole.Active, clock);
        var b = Region("region-b", RegionRole.Standby, clock, etcd: regionBEtcd);
        await a.Manager.TickAsync(CancellationToken.None); // then A's failover service is gone
        proxy.Cut();

        clock.SetUtcNow(a.Manager.LastSeen!.LeaseUntil + Defaults.PromotionMargin + TimeSpan.FromSeconds(1));
        await b.Manager.TickAsync(CancellationToken.None);
        clock.Advance(Defaults.RenewInterval);
        await b.Manager.TickAsync(CancellationToken.None);

        Assert.Equal(RegionRole.Standby, b.Manager.Role);
        Assert.Equal(("region-a", 1L), (b.Manager.LastSeen!.ActiveRegion, b.Manager.LastSeen.Epoch));
        proxy.Restore();
        clock.Advance(Defaults.RenewInterval);
        await b.Manager.TickAsync(CancellationToken.None);
        Assert.True(b.Manager.IsWritable);
        Assert.Equal(2, await b.Mirror.ReadAsync(CancellationToken.None));
    }

    [Theory]
    [InlineData(1, 1, 2)] // margins no larger than twice the skew: two regions could both write
    [InlineData(6, 1, 1)] // renewals too sparse to renew twice before the deadline
    public void UnsafeTimings_AreRefusedAtStart(int renewSeconds, int demoteSeconds, int promotionSeconds)
    {
        var options = new RegionLeaseOptions
        {
            Name = "region-a",
            RenewInterval = TimeSpan.FromSeconds(renewSeconds),
            DemoteMargin = TimeSpan.FromSeconds(demoteSeconds),
            PromotionMargin = TimeSpan.FromSeconds(promotionSeconds),
        };

        Assert.Throws<InvalidOperationException>(() => options.Validate());
    }

    /// <summary>A fake clock, and region-a (configured active) after its first tick: epoch 1, its lease running.</summary>
    private async Task<(FakeTimeProvider Clock, (RegionLeaseManager Manager, RegionEpochMirror Mirror) A)> RegionAActiveAsync()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-29T12:00:00Z"));
        var a = Region("region-a", RegionRole.Active, clock);
        await a.Manager.TickAsync(CancellationToken.None);
        return (clock, a);
    }

    /// <summary>The clock just past the lease <paramref name="holder"/> last saw, and its promotion margin: a standby may promote.</summary>
    private static void PastItsLease(FakeTimeProvider clock, RegionLeaseManager holder) =>
        clock.SetUtcNow(holder.LastSeen!.LeaseUntil + Defaults.PromotionMargin + TimeSpan.FromSeconds(1));

    private (RegionLeaseManager Manager, RegionEpochMirror Mirror) Region(
        string name, RegionRole role, TimeProvider clock, int? cosmosPort = null, string? peerRegion = null, EtcdConnection? etcd = null) =>
        fixture.Region(container, disposables, name, role, clock, cosmosPort, peerRegion, etcd);

    /// <summary>The client port of the cluster's first member: a proxy in front of it is one region's etcd, cut.</summary>
    private int FirstMemberPort() => new Uri(fixture.Cluster.ClientEndpoints.Split(',')[0]).Port;
}

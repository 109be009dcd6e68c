using Microsoft.Azure.Cosmos;
using Microsoft.Extensions.Time.Testing;
using Payments.Cosmos;
using Payments.Failover.Core;

namespace Payments.Failover.IntegrationTests;

/// <summary>Planned switchovers with more than one failover process per region (the chart runs two), on the real
/// parts of <see cref="RegionLeaseTests"/>: the region's etcd closes the handed-over epoch, and the record carries the
/// cool-down.</summary>
[Collection(FailoverCollection.Name)]
public sealed class SwitchoverTests(FailoverFixture fixture) : IAsyncLifetime
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private readonly List<IDisposable> disposables = [];
    private readonly FakeTimeProvider clock = new(DateTimeOffset.Parse("2026-12-05T12:00:00Z"));
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

    /// <summary>The region's other failover process, ticking while the switchover drains, found the record still
    /// naming its region: it renewed the lease (so the hand-over's compare-and-swap failed) and put the epoch back
    /// into etcd after the switchover had deleted it — region A writing again while region B, handed the record, would
    /// start at once. Now neither: the epoch is closed in A's etcd, even for a hold already past its renewal.</summary>
    [Fact]
    public async Task TheRegionsOtherFailoverProcess_NeitherRenewsNorHoldsTheEpoch_WhileASwitchoverHandsItOver()
    {
        var (a1, a2, b) = await TwoProcessesOfAAndBAsync();
        Assert.True(a1.Manager.IsWritable && a2.Manager.IsWritable);
        var draining = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var shipped = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        a1.Manager.BeforeHandOver = async cancellationToken =>
        {
            draining.TrySetResult();
            await shipped.Task.WaitAsync(cancellationToken);
        };

        var handOver = a1.Manager.HandOverAsync("region-b", TimeSpan.Zero, CancellationToken.None);
        await draining.Task.WaitAsync(Bound);
        clock.Advance(TimeSpan.FromSeconds(2));
        await a2.Manager.TickAsync(CancellationToken.None);
        var lateHold = await a2.Mirror.HoldUntilAsync(1, clock.GetUtcNow() + TimeSpan.FromSeconds(5), clock, CancellationToken.None);
        var secondRequest = await a2.Manager.HandOverAsync("region-b", TimeSpan.Zero, CancellationToken.None);
        shipped.SetResult();
        var result = await handOver.WaitAsync(Bound);

        Assert.False(a2.Manager.IsWritable);
        Assert.False(lateHold); // a renewal that succeeded just before the hand-over, its hold arriving after it
        Assert.Equal(HandOverOutcome.NotNow, secondRequest.Outcome);
        Assert.Equal((HandOverOutcome.HandedOver, 2L), (result.Outcome, result.Epoch));
        Assert.Null(await a1.Mirror.ReadAsync(CancellationToken.None));
        await b.Manager.TickAsync(CancellationToken.None);
        await a2.Manager.TickAsync(CancellationToken.None);
        Assert.Equal((RegionRole.Active, 2L), (b.Manager.Role, b.Manager.Epoch));
        Assert.Equal(RegionRole.Standby, a2.Manager.Role);
        Assert.Null(await a2.Mirror.ReadAsync(CancellationToken.None));
    }

    /// <summary>A switchover whose process died after closing the epoch and before handing the record over: the
    /// region stays unwritable until the lease it renewed ends, then its other process takes the record again with
    /// the next epoch (no human needed), and the standby stays standby.</summary>
    [Fact]
    public async Task ASwitchoverWhoseProcessDiedMidway_HoldsTheRegionOnlyToItsLease_ThenTheRegionTakesTheNextEpoch()
    {
        var (a1, a2, b) = await TwoProcessesOfAAndBAsync();
        var leaseEnd = clock.GetUtcNow() + new RegionLeaseOptions().LeaseDuration;
        await a1.Mirror.BeginHandOverAsync(1, leaseEnd, CancellationToken.None); // and then the process was killed

        clock.Advance(TimeSpan.FromSeconds(2));
        await a2.Manager.TickAsync(CancellationToken.None);
        Assert.False(a2.Manager.IsWritable);
        Assert.Null(await a2.Mirror.ReadAsync(CancellationToken.None));

        clock.Advance(leaseEnd - clock.GetUtcNow());
        await a2.Manager.TickAsync(CancellationToken.None);
        await b.Manager.TickAsync(CancellationToken.None);

        Assert.True(a2.Manager.IsWritable);
        Assert.Equal(2, a2.Manager.Epoch);
        Assert.Equal(2, await a2.Mirror.ReadAsync(CancellationToken.None));
        Assert.Equal(RegionRole.Standby, b.Manager.Role);
        Assert.Equal(("region-a", 2L), (b.Manager.LastSeen!.ActiveRegion, b.Manager.LastSeen.Epoch));
    }

    /// <summary>The cool-down was kept in each process's memory: the region that was just handed the record could
    /// switch back at once, and so could another process of the first region. The record now carries it.</summary>
    [Fact]
    public async Task TheCooldown_IsCarriedByTheRecord_SoThePeerRegionCannotSwitchBackAtOnce()
    {
        var cooldown = TimeSpan.FromMinutes(5);
        var a = fixture.Region(container, disposables, "region-a", RegionRole.Active, clock);
        var b = fixture.Region(container, disposables, "region-b", RegionRole.Standby, clock);
        await a.Manager.TickAsync(CancellationToken.None);
        Assert.Equal(HandOverOutcome.HandedOver, (await a.Manager.HandOverAsync("region-b", cooldown, CancellationToken.None)).Outcome);
        clock.Advance(TimeSpan.FromSeconds(2));
        await b.Manager.TickAsync(CancellationToken.None);
        Assert.True(b.Manager.IsWritable);

        var back = await b.Manager.HandOverAsync("region-a", cooldown, CancellationToken.None);
        Assert.Equal(HandOverOutcome.NotNow, back.Outcome);
        Assert.InRange(back.RetryAfter, cooldown - TimeSpan.FromSeconds(3), cooldown);
        Assert.True(b.Manager.IsWritable); // refused before anything changed

        clock.Advance(cooldown);
        await b.Manager.TickAsync(CancellationToken.None);
        var later = await b.Manager.HandOverAsync("region-a", cooldown, CancellationToken.None);
        Assert.Equal((HandOverOutcome.HandedOver, 3L), (later.Outcome, later.Epoch));
    }

    /// <summary>Two failover processes of region A, both holding epoch 1 after a tick each, and region B's.</summary>
    private async Task<((RegionLeaseManager Manager, Payments.Etcd.Regions.RegionEpochMirror Mirror) A1,
        (RegionLeaseManager Manager, Payments.Etcd.Regions.RegionEpochMirror Mirror) A2,
        (RegionLeaseManager Manager, Payments.Etcd.Regions.RegionEpochMirror Mirror) B)> TwoProcessesOfAAndBAsync()
    {
        var a1 = fixture.Region(container, disposables, "region-a", RegionRole.Active, clock);
        var a2 = fixture.Region(container, disposables, "region-a", RegionRole.Active, clock);
        var b = fixture.Region(container, disposables, "region-b", RegionRole.Standby, clock);
        await a1.Manager.TickAsync(CancellationToken.None);
        await a2.Manager.TickAsync(CancellationToken.None);
        return (a1, a2, b);
    }
}

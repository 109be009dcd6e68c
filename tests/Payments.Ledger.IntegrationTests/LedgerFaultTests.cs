using System.Diagnostics;
using Payments.Ledger.IntegrationTests.Infrastructure;
using Payments.Testing;
using Xunit.Abstractions;

namespace Payments.Ledger.IntegrationTests;

[Collection(FaultyEtcdCollection.Name)]
public sealed class LedgerFaultTests(FaultyEtcdClusterFixture etcd, ITestOutputHelper output)
{
    public const int Workers = 32;
    public static readonly TimeSpan TestTimeout = TimeSpan.FromMinutes(4);

    [Fact]
    public async Task RandomTransfers_SurviveLeaderKillAndFollowerPause_WithNoAcknowledgedTransferLost()
    {
        using var timeout = new CancellationTokenSource(TestTimeout);
        var cluster = etcd.Cluster;
        var ledger = etcd.NewLedger();
        var workload = new RandomWorkload(ledger, seed: 7);
        await workload.SetUpAsync(timeout.Token);
        var appliedBeforeFaults = 0;
        var appliedAfterReelection = 0;
        var appliedAtPause = 0;
        var appliedWhilePaused = 0;

        var faultsDone = false;
        var load = workload.RunAsync(Workers, () => !Volatile.Read(ref faultsDone), timeout.Token);
        var faults = Task.Run(async () =>
        {
            await WaitForProgressAsync(load, workload, 200, timeout.Token);
            appliedBeforeFaults = workload.Applied.Count;
            var leader = await cluster.LeaderIndexAsync(timeout.Token);
            output.WriteLine($"Killing leader m{leader} after {appliedBeforeFaults} transfers");
            await cluster.KillAsync(leader);
            var newLeader = await cluster.WaitForLeaderAsync(timeout.Token);
            output.WriteLine($"New leader m{newLeader}");
            await WaitForProgressAsync(load, workload, workload.Applied.Count + 200, timeout.Token);
            appliedAfterReelection = workload.Applied.Count;

            cluster.Restart(leader);
            await cluster.WaitForMemberAsync(leader, timeout.Token); // rejoined: pausing the other follower keeps a quorum
            var follower = Enumerable.Range(0, cluster.Members.Count).First(index => index != newLeader && index != leader);
            // Pin the connection to the follower we freeze, so the frozen-member path is really taken.
            for (var hop = 0; hop < cluster.Members.Count && etcd.Connection.CurrentEndpoint != follower; hop++)
            {
                etcd.Connection.MoveOff(etcd.Connection.CurrentEndpoint);
            }

            output.WriteLine($"Restarted m{leader}; pausing follower m{follower} (connection on m{etcd.Connection.CurrentEndpoint})");
            cluster.Pause(follower);
            appliedAtPause = workload.Applied.Count;
            await WaitForProgressAsync(load, workload, appliedAtPause + 200, timeout.Token);
            appliedWhilePaused = workload.Applied.Count - appliedAtPause;
            cluster.Resume(follower);
            output.WriteLine($"Resumed m{follower}");
            await WaitForProgressAsync(load, workload, workload.Applied.Count + 100, timeout.Token);
            Volatile.Write(ref faultsDone, true);
        }, timeout.Token);
        await Task.WhenAll(load, faults);
        await cluster.WaitForLeaderAsync(timeout.Token);
        await workload.ResolveUnknownAsync(timeout.Token);

        var report = await LedgerAssert.InvariantsHoldAsync(ledger, timeout.Token);
        workload.AssertJournalMatches(report);
        output.WriteLine(workload.Summary());
        Assert.True(appliedAfterReelection > appliedBeforeFaults, "no transfer was applied after the leader was killed");
        Assert.True(appliedWhilePaused > 0, "no transfer was applied while a follower was paused");
    }

    /// <summary>Polls (bounded) until the workload has applied <paramref name="count"/> transfers.</summary>
    private static async Task WaitForProgressAsync(Task load, RandomWorkload workload, int count, CancellationToken cancellationToken)
    {
        var bound = Stopwatch.StartNew();
        while (workload.Applied.Count < count)
        {
            if (load.IsFaulted)
            {
                await load; // a worker died: surface its exception rather than a stall
            }

            Assert.True(bound.Elapsed < TimeSpan.FromSeconds(60), $"The workload stalled at {workload.Applied.Count} transfers.");
            await Task.Delay(TimeSpan.FromMilliseconds(50), cancellationToken);
        }
    }
}

using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;
using Payments.Etcd;
using Payments.Etcd.Maintenance;
using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.LocalCluster;
using Payments.ServiceDefaults.Security;
using Payments.Testing;
using Xunit.Abstractions;

namespace Payments.Ledger.IntegrationTests;

/// <summary>Found in review: out of space (NOSPACE) etcd grants no lease and takes no put, so the maintenance pass —
/// which took its fenced lock first — failed at every pass and never ran the recovery the runbook promises (compact,
/// defragment, disarm). The region stayed down until someone came. Its own cluster: the alarm stops every write.</summary>
public sealed class NoSpaceRecoveryTests(ITestOutputHelper output)
{
    private static readonly TimeSpan TestTimeout = TimeSpan.FromMinutes(3);
    private static readonly DefragPolicy Policy = new(TimeSpan.FromSeconds(2), 16L * 1024 * 1024, 0.5, 128L * 1024 * 1024);

    [Fact]
    public async Task AnArmedNoSpaceAlarm_IsDisarmedByTheNextPass_ThoughNoLockCanBeHad()
    {
        using var timeout = new CancellationTokenSource(TestTimeout);
        await using var cluster = await LocalEtcdCluster.StartAsync(3, output.WriteLine, timeout.Token);
        using var etcd = cluster.ConnectAsRoot();
        var put = new PutRequest { Key = EtcdBytes.Key("/nospace/probe"), Value = ByteString.CopyFromUtf8("x") };
        await EtcdConnection.CallAsync(call => etcd.Kv.PutAsync(put, cancellationToken: call), timeout.Token);

        // Armed as a member at its quota arms it (etcd's Alarm API; the same capped applier follows).
        var status = await etcd.MemberMaintenance(0).StatusAsync(new StatusRequest(), cancellationToken: timeout.Token);
        await etcd.MemberMaintenance(0).AlarmAsync(new AlarmRequest
        {
            Action = AlarmRequest.Types.AlarmAction.Activate, MemberID = status.Header.MemberId, Alarm = AlarmType.Nospace,
        }, cancellationToken: timeout.Token);
        var refused = await Assert.ThrowsAsync<RpcException>(() => etcd.Kv.PutAsync(put, cancellationToken: timeout.Token).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        var noLease = await Assert.ThrowsAsync<RpcException>(() => etcd.Leases.LeaseGrantAsync(new LeaseGrantRequest { TTL = 30 }, cancellationToken: timeout.Token).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, noLease.StatusCode);

        var defragmenter = new EtcdDefragmenter(etcd, "/nospace/locks/etcd-maintenance", Policy, NullLogger<EtcdDefragmenter>.Instance);
        var pass = await defragmenter.RunOnceAsync(timeout.Token);

        Assert.NotNull(pass);
        Assert.True(pass.AlarmDisarmed, $"not disarmed: {pass}");
        Assert.InRange(pass.Defragmented, 1, 3); // each that answered its status in time (CI's cores are busy)
        var alarms = await etcd.MemberMaintenance(0).AlarmAsync(new AlarmRequest { Action = AlarmRequest.Types.AlarmAction.Get }, cancellationToken: timeout.Token);
        Assert.Empty(alarms.Alarms);
        await EtcdConnection.CallAsync(call => etcd.Kv.PutAsync(put, cancellationToken: call), timeout.Token); // writes again
    }

    /// <summary>The runbook (etcd-nospace.md) says the ledger answers 503 while the alarm is armed: it answered 500
    /// "something went wrong on our side", its RpcException ResourceExhausted (not retried) mapped nowhere (ledger review).
    /// A write answers 503 service-unavailable with Retry-After; a read still answers.</summary>
    [Fact]
    public async Task WhileNoSpaceIsArmed_TheLedgerServiceAnswers503ToAWrite_NotA500()
    {
        const string Prefix = "/nospace-service/";
        using var timeout = new CancellationTokenSource(TestTimeout);
        await using var cluster = await LocalEtcdCluster.StartAsync(1, output.WriteLine, timeout.Token);
        var ledger = await InProcessApp.StartLedgerServiceAsync(cluster, Prefix);
        try
        {
            using var client = new HttpClient { BaseAddress = new Uri(InProcessApp.BaseUrl(ledger)) };
            InProcessApp.Identity.Present(client, ServiceRoles.Api, ServiceRoles.Ledger);
            using var opened = await client.PostAsync(LedgerRoutes.Prefix + "accounts", Json("""{"id":"nospace-before","currency":"EUR"}"""), timeout.Token);
            Assert.True(opened.IsSuccessStatusCode, $"the account was not opened: {(int)opened.StatusCode}");

            using var etcd = cluster.ConnectAsRoot();
            var status = await etcd.MemberMaintenance(0).StatusAsync(new StatusRequest(), cancellationToken: timeout.Token);
            await etcd.MemberMaintenance(0).AlarmAsync(new AlarmRequest
            {
                Action = AlarmRequest.Types.AlarmAction.Activate, MemberID = status.Header.MemberId, Alarm = AlarmType.Nospace,
            }, cancellationToken: timeout.Token);

            using var refused = await client.PostAsync(LedgerRoutes.Prefix + "accounts", Json("""{"id":"nospace-after","currency":"EUR"}"""), timeout.Token);
            var body = await refused.Content.ReadAsStringAsync(timeout.Token);
            Assert.True(refused.StatusCode == System.Net.HttpStatusCode.ServiceUnavailable, $"{(int)refused.StatusCode}: {body}");
            Assert.Equal(ProblemTypes.ServiceUnavailable, System.Text.Json.JsonDocument.Parse(body).RootElement.GetProperty("type").GetString());
            Assert.Equal(TimeSpan.FromSeconds(1), refused.Headers.RetryAfter?.Delta);
            using var read = await client.GetAsync(LedgerRoutes.Prefix + "accounts/nospace-before", timeout.Token);
            Assert.True(read.IsSuccessStatusCode, $"a read while out of space: {(int)read.StatusCode}");
        }
        finally
        {
            await InProcessApp.StopAsync(ledger);
        }
    }

    private static StringContent Json(string body) => new(body, System.Text.Encoding.UTF8, "application/json");

    /// <summary>A member that does not answer may be down: defragmenting another then leaves the last one without a
    /// quorum. The pass defragments nobody while a member is missing.</summary>
    [Fact]
    public async Task WhileAMemberIsDown_NoMemberIsDefragmented()
    {
        using var timeout = new CancellationTokenSource(TestTimeout);
        await using var cluster = await LocalEtcdCluster.StartAsync(3, output.WriteLine, timeout.Token);
        using var etcd = cluster.ConnectAsRoot();
        var everyone = new DefragPolicy(TimeSpan.FromSeconds(2), 0, 0, 128L * 1024 * 1024); // every member worth it
        var defragmenter = new EtcdDefragmenter(etcd, "/nospace/locks/etcd-maintenance", everyone, NullLogger<EtcdDefragmenter>.Instance);
        // With every member up, every one is defragmented (asked again, bounded, while one misses its status deadline).
        var passes = 0;
        while ((await defragmenter.RunOnceAsync(timeout.Token))?.Defragmented != 3)
        {
            Assert.True(++passes < 5, "no pass defragmented all three members");
        }

        await cluster.KillAsync(2);
        await cluster.WaitForLeaderAsync(timeout.Token); // the two left elect one, if it was the one killed
        var pass = await defragmenter.RunOnceAsync(timeout.Token);

        Assert.NotNull(pass);
        Assert.Equal((2, 0), (pass.Members, pass.Defragmented));
    }
}

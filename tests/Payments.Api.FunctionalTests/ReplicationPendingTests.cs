using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Hosting;
using Payments.Domain;
using Payments.Etcd.Regions;
using Payments.LocalCluster;
using Payments.Merchants;
using Payments.Testing;

namespace Payments.Api.FunctionalTests;

/// <summary>Sync replication with Cosmos DB unreachable: a deposit the ledger committed but could not get into the
/// replicated journal in time is answered 503 <c>replication-pending</c> — its own type, because on-call's runbook for
/// it is Cosmos DB and the failover service, not etcd (the API answered <c>service-unavailable</c>) — and the client's
/// retry with its key, once Cosmos DB is back, gets the deposit, applied once. The real ledger service, in a region's
/// sync mode, in front of the local Cosmos-compatible server through a proxy the test cuts.</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class ReplicationPendingTests(ApiSystemFixture system)
{
    /// <summary>How long the client retries once Cosmos DB is back: the shipper's longest back-off and a call's
    /// timeout, many times over for a loaded machine.</summary>
    private static readonly TimeSpan RetryBudget = TimeSpan.FromSeconds(60);

    /// <param name="awayAtStart">Cosmos DB away already when the ledger starts (a review: the ledger checked its account
    /// and journal container at start-up, bounded at 60 s, and exited — a restart during a Cosmos DB outage crash-looped,
    /// and once every replica had cycled the region had no ledger). It starts, and ships once Cosmos DB is back.</param>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ADepositCosmosHasNotTaken_Is503ReplicationPending_AndItsRetryGetsItOnce(bool awayAtStart)
    {
        await using var cosmos = await LocalCosmosServer.StartAsync(CancellationToken.None);
        await using var proxy = new TcpProxy(cosmos.Port);
        if (awayAtStart)
        {
            proxy.Cut();
        }

        var prefix = $"/functional-sync-{Guid.NewGuid():N}/";
        Assert.True(await new RegionEpochMirror(system.Etcd, prefix).HoldAsync(1, TimeSpan.FromMinutes(5), CancellationToken.None)); // the active region
        var ledger = await InProcessApp.StartLedgerServiceAsync(system.Cluster, prefix, new Dictionary<string, string>
        {
            ["Region:Name"] = "region-a",
            ["Replication:Mode"] = "Sync",
            ["Replication:SyncTimeout"] = "00:00:02",
            ["Cosmos:Endpoint"] = $"https://127.0.0.1:{proxy.Port.ToString(CultureInfo.InvariantCulture)}/",
            ["Cosmos:Key"] = LocalCosmosServer.Key,
            ["Cosmos:LimitToEndpoint"] = "true",
            ["Cosmos:AcceptAnyServerCertificate"] = "true", // the local server's self-signed certificate; tests only
            ["Cosmos:Database"] = "daprpayments-tests",
            ["Cosmos:JournalContainer"] = $"journal-{Guid.NewGuid():N}",
        });
        try
        {
            await using var replica = await system.StartReplicaAsync(prefix, web => web.UseSetting("Payments:LedgerUrl", InProcessApp.BaseUrl(ledger)));
            await using var throughEdge = await EdgeHost.ClientThroughAsync(
                replica.ClientOptions.BaseAddress, await new MerchantStore(system.Etcd, prefix + "api/").IssueApiKeyAsync("sync-merchant", CancellationToken.None));
            var client = throughEdge.Http;
            await client.OpenAccountAsync("sync-account");
            var deposit = () => client.SendJsonAsync("/v1/accounts/sync-account/deposits", """{"amountMinor":500,"currency":"USD"}""", "sync-deposit-1");

            proxy.Cut(); // (again, when it was away at the start: a no-op)
            using var pending = await deposit();
            Assert.Equal(HttpStatusCode.ServiceUnavailable, pending.StatusCode);
            Assert.Equal(ProblemTypes.ReplicationPending, (await pending.JsonAsync()).GetProperty("type").GetString());
            Assert.Equal(TimeSpan.FromSeconds(1), pending.Headers.RetryAfter?.Delta);

            proxy.Restore();
            // As a client would: the same key again while the answer is replication-pending, after its Retry-After. The
            // shipper may still be inside a call through the cut proxy, or in its back-off, when the first retry comes.
            var retried = await deposit();
            var retryUntil = DateTimeOffset.UtcNow + RetryBudget;
            while (retried.StatusCode == HttpStatusCode.ServiceUnavailable && DateTimeOffset.UtcNow < retryUntil)
            {
                Assert.Equal(ProblemTypes.ReplicationPending, (await retried.JsonAsync()).GetProperty("type").GetString());
                var after = retried.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(1);
                retried.Dispose();
                await Task.Delay(after); // the Retry-After the 503 names, as a client waits it: a bounded retry, not a sleep for state
                retried = await deposit();
            }

            using var answered = retried;
            Assert.Equal(HttpStatusCode.Created, answered.StatusCode);
            Assert.Equal(500, await client.BalanceAsync("sync-account")); // committed once, acknowledged by the retry
        }
        finally
        {
            await InProcessApp.StopAsync(ledger);
        }
    }
}

/// <summary>Found in a failover review: a sync write committed just before the region's write deadline, with a slow
/// shipper, was acknowledged when its page shipped up to the sync timeout (5 s) later — after the other region may have
/// promoted (3 s after the deadline with the default timings) and read this region's journal head for its catch-up,
/// so the page was one it never applied: an acknowledged write lost in the mode that promises none is. A page that
/// ships only after the deadline is answered replication-pending. Real etcd, the local Cosmos-compatible server behind
/// a proxy the test cuts, the region's view of its deadline on a fake clock.</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class SyncAcknowledgementDeadlineTests(ApiSystemFixture system)
{
    private static readonly TimeSpan Bound = TimeSpan.FromMinutes(2);

    [Fact]
    public async Task AWriteShippedOnlyAfterTheRegionsWriteDeadline_IsNotAcknowledged()
    {
        using var timeout = new CancellationTokenSource(Bound);
        await using var cosmos = await LocalCosmosServer.StartAsync(timeout.Token);
        await using var proxy = new TcpProxy(cosmos.Port);
        var prefix = $"/functional-sync-deadline-{Guid.NewGuid():N}/";
        Assert.True(await new RegionEpochMirror(system.Etcd, prefix).HoldAsync(1, TimeSpan.FromMinutes(5), timeout.Token));
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        var region = new RegionEpochWatcher(system.Etcd, prefix, clock);
        await region.RefreshAsync(timeout.Token);
        Assert.True(region.IsWritable);

        using var client = new Payments.Cosmos.CosmosSettings
        {
            Endpoint = new Uri($"https://127.0.0.1:{proxy.Port.ToString(CultureInfo.InvariantCulture)}/"),
            Key = LocalCosmosServer.Key,
            LimitToEndpoint = true,
            AcceptAnyServerCertificate = true, // the local server's self-signed certificate; tests only
        }.CreateClient();
        var journal = await Payments.Cosmos.CosmosSettings.EnsureContainerAsync(client, "daprpayments-tests", $"journal-{Guid.NewGuid():N}", timeout.Token);
        var ledger = new Payments.Ledger.Core.EtcdLedger(
            system.Etcd, prefix + "ledger/", TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<Payments.Ledger.Core.EtcdLedger>.Instance);
        var shipper = new Payments.Failover.Core.Replication.JournalShipper(
            "region-a", journal, ledger, TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        using var stopShipping = new CancellationTokenSource();
        var shipping = shipper.RunAsync(stopShipping.Token);
        var acknowledger = new Payments.Ledger.Replication.ReplicationAcknowledger(
            new Payments.Ledger.Replication.ReplicationOptions { Mode = Payments.Failover.Core.Replication.ReplicationMode.Sync, SyncTimeout = TimeSpan.FromSeconds(60) },
            shipper, () => region.WriteDeadlinePassed);
        var account = AccountId.Parse("deadline-account");
        await ledger.OpenAccountAsync(account, Currency.Usd, 0, timeout.Token);
        Task<Payments.Ledger.Contracts.TransferOutcome> Deposit(long amount) => ledger.TransferAsync(
            new Payments.Ledger.Contracts.TransferRequest.Single(
                TransferId.Parse($"t-{Guid.NewGuid():N}"), AccountId.ExternalFunding(Currency.Usd), account, new Money(amount, Currency.Usd))
            {
                IssuedAt = DateTimeOffset.UtcNow,
            },
            timeout.Token);

        try
        {
            // Shipped before the deadline: acknowledged.
            await acknowledger.WaitAsync(await Deposit(100), timeout.Token);

            proxy.Cut();
            var waiting = acknowledger.WaitAsync(await Deposit(200), timeout.Token); // committed before the deadline
            Assert.False(waiting.IsCompleted);
            clock.Advance(TimeSpan.FromMinutes(6)); // past the hold's deadline, by the region's clock
            proxy.Restore(); // the page ships now, after it

            var refused = await Assert.ThrowsAsync<TimeoutException>(() => waiting);
            Assert.Contains("write deadline", refused.Message, StringComparison.Ordinal);
        }
        finally
        {
            await stopShipping.CancelAsync();
            await shipping;
        }
    }
}

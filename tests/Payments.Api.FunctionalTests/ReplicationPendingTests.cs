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

    [Fact]
    public async Task ADepositCosmosHasNotTaken_Is503ReplicationPending_AndItsRetryGetsItOnce()
    {
        await using var cosmos = await LocalCosmosServer.StartAsync(CancellationToken.None);
        await using var proxy = new TcpProxy(cosmos.Port);
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

            proxy.Cut();
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

using System.Net;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Payments.Cosmos;
using Payments.LocalCluster;
using Payments.Orchestrator.Client.Records;

namespace Payments.Api.FunctionalTests;

/// <summary>Issue 10, bounded storage of payment records: a finished payment moved from etcd to the archive (as the
/// failover service's archiver moves it after its retention) is still what <c>GET /v1/payments/{id}</c> answers,
/// for its merchant only; and a key reused after its window never names an archived payment again.</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class PaymentArchiveTests(ApiSystemFixture system) : IAsyncLifetime
{
    private LocalCosmosServer cosmos = null!;
    private Microsoft.Azure.Cosmos.CosmosClient? archiveClient;
    private CosmosSettings settings = null!;

    public async Task InitializeAsync()
    {
        cosmos = await LocalCosmosServer.StartAsync(CancellationToken.None);
        settings = new CosmosSettings
        {
            Endpoint = cosmos.Endpoint,
            Key = LocalCosmosServer.Key,
            LimitToEndpoint = true,
            AcceptAnyServerCertificate = true, // the local server's self-signed certificate; tests only
            Database = "daprpayments-tests",
            ArchiveContainer = $"archive-{Guid.NewGuid():N}",
        };
    }

    public async Task DisposeAsync()
    {
        archiveClient?.Dispose();
        await cosmos.DisposeAsync();
    }

    [Fact]
    public async Task AKeyReusedAfterItsWindow_NeverNamesAnArchivedPayment_AndArchivedPaymentsStillAnswer()
    {
        // Two windows back, so that after two reuses the replica's clock is now (the ledger refuses transfers issued
        // ahead of its own clock).
        var window = IdempotencyStoreWindow;
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow - window * 2);
        await using var replica = StartReplica(clock);
        var merchant = $"arch-{Guid.NewGuid():N}"[..20];
        await using var throughEdge = await EdgeHost.ClientThroughAsync(
            replica.ClientOptions.BaseAddress, await system.Store.IssueApiKeyAsync(merchant, CancellationToken.None));
        var client = throughEdge.Http;
        var (debtor, creditor) = await IdempotencyAndIsolationTests.AccountsAsync(await system.ClientForAsync(merchant));
        var key = Guid.NewGuid().ToString();
        var archive = await ArchiveAsync();
        var records = new PaymentRecordStore(system.Etcd, ApiSystemFixture.KeyPrefix + "payments/");
        var answers = new Dictionary<string, string>();

        for (var use = 0; use < 3; use++)
        {
            using var paid = await client.PayAsync(debtor, creditor, 100, key);
            var paymentId = (await paid.JsonAsync()).GetProperty("paymentId").GetString()!;
            Assert.DoesNotContain(paymentId, answers.Keys); // a new payment each time, never an archived one's id
            var finished = await client.WaitForStatusAsync(paymentId);
            Assert.True(finished.GetProperty("status").GetString() == "completed", finished.ToString());
            answers[paymentId] = (await (await client.GetAsync($"/v1/payments/{paymentId}")).Content.ReadAsStringAsync());

            // Archived as the failover service's archiver does it: into the archive first, then out of etcd.
            var (record, revision) = (await records.GetAsync(paymentId, CancellationToken.None))!.Value;
            await archive.PutAsync(new ArchivedRecord(paymentId, merchant, PaymentRecordStore.ToJson(record), clock.GetUtcNow()), CancellationToken.None);
            Assert.Equal(1, await records.DeleteFinishedAsync([(record, revision)], CancellationToken.None));

            clock.Advance(window);
            await IdempotencyExpiryTests.ExpireIdempotencyRecordsAsync(system, merchant);
        }

        Assert.Equal(300, await client.BalanceAsync(creditor));
        foreach (var (paymentId, answer) in answers)
        {
            using var read = await client.GetAsync($"/v1/payments/{paymentId}");
            Assert.Equal(HttpStatusCode.OK, read.StatusCode);
            Assert.Equal(answer, await read.Content.ReadAsStringAsync());
        }

        // Another merchant's key does not see them; a replica without the archive (one region) does not either.
        var stranger = await system.ClientForAsync($"arch-{Guid.NewGuid():N}"[..20]);
        var other = await system.ClientForAsync(merchant);
        foreach (var paymentId in answers.Keys)
        {
            Assert.Equal(HttpStatusCode.NotFound, (await stranger.GetAsync($"/v1/payments/{paymentId}")).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await other.GetAsync($"/v1/payments/{paymentId}")).StatusCode);
        }
    }

    private static TimeSpan IdempotencyStoreWindow => Payments.Etcd.IdempotencyStore.Retention + Payments.Etcd.IdempotencyStore.LeaseBucketWidth;

    private async Task<RecordArchive> ArchiveAsync()
    {
        archiveClient = settings.CreateClient();
        var container = await CosmosSettings.EnsureContainerAsync(archiveClient, settings.Database, settings.ArchiveContainer, CancellationToken.None);
        return new RecordArchive(container, settings.ServerErrorMeansMissing);
    }

    private WebApplicationFactory<Program> StartReplica(TimeProvider clock) =>
        system.StartReplica(web =>
        {
            web.UseSetting("Cosmos:Endpoint", settings.Endpoint!.ToString());
            web.UseSetting("Cosmos:Key", settings.Key);
            web.UseSetting("Cosmos:LimitToEndpoint", "true");
            web.UseSetting("Cosmos:AcceptAnyServerCertificate", "true");
            web.UseSetting("Cosmos:Database", settings.Database);
            web.UseSetting("Cosmos:ArchiveContainer", settings.ArchiveContainer);
            web.ConfigureTestServices(services => services.AddSingleton<TimeProvider>(clock));
        });
}

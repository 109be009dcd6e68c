using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Payments.Domain;
using Payments.Etcd;
using Payments.Etcd.Regions;
using Payments.Failover.Core;
using Payments.Failover.Core.Replication;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core;
using Payments.LocalCluster;

namespace Payments.Failover.IntegrationTests;

/// <summary>The failover service of two regions, as processes would run it (real HTTP, real lease loop on the real
/// clock), against the local Cosmos-compatible server and etcd: status, and a planned switchover and back.</summary>
[Collection(FailoverCollection.Name)]
public sealed class FailoverServiceTests(FailoverFixture fixture)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task PlannedSwitchover_MovesTheActiveRegion_AndBack_WithTheOldRegionStoppedFirst()
    {
        var control = $"control-{Guid.NewGuid():N}";
        await using var a = Region("region-a", "active", control);
        await using var b = Region("region-b", "standby", control);
        var clientA = a.CreateClient();
        var clientB = b.CreateClient();
        var mirrorA = new RegionEpochMirror(fixture.Connection, Prefix(control, "region-a"));
        var mirrorB = new RegionEpochMirror(fixture.Connection, Prefix(control, "region-b"));
        var ledgerA = fixture.NewLedger(prefix: Prefix(control, "region-a") + "ledger/");
        var ledgerB = fixture.NewLedger(prefix: Prefix(control, "region-b") + "ledger/");
        // Each region's ledger service ships its journal (here in the test process, as the service would).
        using var cosmos = fixture.Settings().CreateClient();
        var journal = await CosmosSettings.EnsureContainerAsync(cosmos, "daprpayments-tests", "journal-" + control, CancellationToken.None);
        using var stopShipping = new CancellationTokenSource();
        var shipping = Task.WhenAll(
            new JournalShipper("region-a", journal, ledgerA, TimeProvider.System, NullLogger.Instance).RunAsync(stopShipping.Token),
            new JournalShipper("region-b", journal, ledgerB, TimeProvider.System, NullLogger.Instance).RunAsync(stopShipping.Token));

        var statusA = await WaitForAsync(clientA, status => status.GetProperty("role").GetString() == "active");
        Assert.Equal(1, statusA.GetProperty("epoch").GetInt64());
        var statusB = await WaitForAsync(clientB, status => status.GetProperty("activeRegion").GetString() == "region-a");
        Assert.Equal("standby", statusB.GetProperty("role").GetString());

        var paid = await PayAsync(ledgerA, count: 40); // written in A while it is active

        var handOver = await clientA.PostAsJsonAsync("/admin/v1/switchover", new { to = "region-b" });
        Assert.Equal(HttpStatusCode.OK, handOver.StatusCode);
        Assert.Null(await mirrorA.ReadAsync(CancellationToken.None)); // A stopped writing before the record moved
        await WaitForAsync(clientB, status => status.GetProperty("role").GetString() == "active" && status.GetProperty("epoch").GetInt64() == 2);
        Assert.Equal(2, await mirrorB.ReadAsync(CancellationToken.None));
        // Zero loss: B took writes only after applying all A had written.
        Assert.Equal(paid, await BalanceAsync(ledgerB));
        Assert.Equal(HttpStatusCode.Conflict, (await clientA.PostAsJsonAsync("/admin/v1/switchover", new { to = "region-b" })).StatusCode);

        // Fail back.
        Assert.Equal(HttpStatusCode.OK, (await clientB.PostAsJsonAsync("/admin/v1/switchover", new { to = "region-a" })).StatusCode);
        await WaitForAsync(clientA, status => status.GetProperty("role").GetString() == "active" && status.GetProperty("epoch").GetInt64() == 3);
        Assert.Null(await mirrorB.ReadAsync(CancellationToken.None));
        Assert.Equal(3, await mirrorA.ReadAsync(CancellationToken.None));
        Assert.Equal(paid, await BalanceAsync(ledgerA));
        await stopShipping.CancelAsync();
        await shipping;
    }

    private static readonly AccountId Creditor = AccountId.Parse("switchover-creditor");

    /// <summary>Deposits to one account, straight on the region's ledger; returns its balance.</summary>
    private static async Task<long> PayAsync(EtcdLedger ledger, int count)
    {
        await ledger.OpenAccountAsync(Creditor, Currency.Eur, 0, CancellationToken.None);
        for (var index = 0; index < count; index++)
        {
            var transfer = new TransferRequest.Single(TransferId.Parse($"t-{Guid.NewGuid():N}"), AccountId.ExternalFunding(Currency.Eur), Creditor, new Money(index + 1, Currency.Eur))
            {
                IssuedAt = DateTimeOffset.UtcNow,
            };
            Assert.IsType<TransferOutcome.Applied>(await ledger.TransferAsync(transfer, CancellationToken.None));
        }

        return await BalanceAsync(ledger);
    }

    private static async Task<long> BalanceAsync(EtcdLedger ledger) =>
        (await ledger.GetAccountAsync(Creditor, CancellationToken.None))?.BalanceMinor ?? -1;

    [Fact]
    public async Task SwitchoverWithoutATarget_IsRefusedWithAProblem()
    {
        await using var a = Region("region-a", "active", $"control-{Guid.NewGuid():N}");
        var response = await a.CreateClient().PostAsJsonAsync("/admin/v1/switchover", new { to = "region-a" });

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    private WebApplicationFactory<Program> Region(string name, string role, string control) =>
        new WebApplicationFactory<Program>().WithWebHostBuilder(web =>
        {
            web.UseSetting("Region:Name", name);
            web.UseSetting("Region:Role", role);
            web.UseSetting("Cosmos:Endpoint", fixture.Cosmos.Endpoint.ToString());
            web.UseSetting("Cosmos:Key", LocalCosmosServer.Key);
            web.UseSetting("Cosmos:LimitToEndpoint", "true");
            web.UseSetting("Cosmos:AcceptAnyServerCertificate", "true"); // the local server's self-signed certificate
            web.UseSetting("Cosmos:Database", "daprpayments-tests");
            web.UseSetting("Cosmos:ControlContainer", control);
            web.UseSetting("Cosmos:JournalContainer", "journal-" + control);
            web.UseSetting("Payments:EtcdEndpoints", fixture.Cluster.ClientEndpoints);
            web.UseSetting("Payments:KeyPrefix", Prefix(control, name));
            web.UseSetting("Logging:LogLevel:Default", "Warning");
            web.UseSetting("Telemetry:Exporter", "none");
        });

    private static string Prefix(string control, string region) => $"/test/{control}/{region}/";

    /// <summary>The lease loop ticks every 2 s: poll the status (bounded) until <paramref name="condition"/> holds.</summary>
    private static async Task<JsonElement> WaitForAsync(HttpClient client, Func<JsonElement, bool> condition)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            var status = await client.GetFromJsonAsync<JsonElement>("/admin/v1/region");
            if (condition(status))
            {
                return status;
            }

            Assert.True(waited.Elapsed < Bound, $"Region status did not reach the expected state within {Bound}: {status}");
            await Task.Delay(TimeSpan.FromMilliseconds(100));
        }
    }
}

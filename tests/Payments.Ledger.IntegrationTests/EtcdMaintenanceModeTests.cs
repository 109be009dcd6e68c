using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Payments.Etcd;
using Payments.Etcd.Maintenance;
using Payments.Ledger.Contracts;
using Payments.Ledger.Extensions;
using Payments.LocalCluster;
using Payments.ServiceDefaults.Security;
using Payments.Testing;

namespace Payments.Ledger.IntegrationTests;

/// <summary>etcd's storage maintenance in a process of its own (the chart's etcd-maintenance Deployment), on a real
/// secure etcd: it works as the maintenance user with that certificate alone and serves no ledger route, and a ledger
/// told <c>Off</c> holds no maintenance at all — so the root-role certificate can live outside the ledger's pod.</summary>
public sealed class EtcdMaintenanceModeTests
{
    private const string Prefix = "/maintenance-mode-test/";
    private static readonly TimeSpan ReadyBound = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Only_RunsAPassAsTheMaintenanceUser_AndServesNoLedgerRoute_WhileOffLeavesTheLedgerWithoutIt()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await using var cluster = await LocalEtcdCluster.StartAsync(1, progress: null, timeout.Token, secure: true);
        await InProcessApp.GrantAsync(cluster, Prefix, timeout.Token);

        // A second etcd identity beside Only is a mistake in the deployment: refused at start, naming the setting.
        var doubled = Builder(cluster.ClientSettings(EtcdRbac.Maintenance, maintenance: true), EtcdMaintenanceMode.Only);
        Assert.Contains("EtcdMaintenanceCertFile", Assert.Throws<InvalidOperationException>(doubled.AddEtcdMaintenanceOnly).Message, StringComparison.Ordinal);

        var builder = Builder(cluster.ClientSettings(EtcdRbac.Maintenance), EtcdMaintenanceMode.Only);
        Assert.True(builder.IsEtcdMaintenanceOnly());
        builder.AddEtcdMaintenanceOnly();
        var maintenance = builder.Build();
        try
        {
            maintenance.UseEtcdMaintenanceOnly();
            await maintenance.StartAsync(timeout.Token);
            using var http = new HttpClient { BaseAddress = new Uri(InProcessApp.BaseUrl(maintenance)), Timeout = ReadyBound };
            await WaitReadyAsync(http, timeout.Token);
            using var transfer = await http.PostAsync(LedgerRoutes.Prefix + "transfers", new StringContent("{}"), timeout.Token);
            Assert.Equal(HttpStatusCode.NotFound, transfer.StatusCode);
            // As every app answers a route it does not have: problem+json not-found (it was a bodiless 404).
            Assert.Equal("application/problem+json", transfer.Content.Headers.ContentType?.MediaType);
            // Its lock, the members' status: the maintenance user's rights, on its one connection. The hosted service
            // runs its own first pass at start and holds the lock meanwhile (a pass returns null then): asked again.
            var defragmenter = maintenance.Services.GetRequiredService<EtcdDefragmenter>();
            EtcdDefragmenter.Pass? pass = null;
            using (var bound = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token))
            {
                bound.CancelAfter(ReadyBound);
                while ((pass = await defragmenter.RunOnceAsync(bound.Token)) is null)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(100), bound.Token);
                }
            }

            Assert.Equal(1, pass.Members);
            Assert.True(pass.LargestDbSizeBytes > 0);
        }
        finally
        {
            await InProcessApp.StopAsync(maintenance);
        }

        // Off beside the maintenance certificate: the certificate Off keeps out of the pod is still there; refused.
        var leftOver = Builder(cluster.ClientSettings(EtcdRoles.Ledger, maintenance: true), EtcdMaintenanceMode.Off);
        Assert.Contains("EtcdMaintenanceCertFile", (await Assert.ThrowsAsync<InvalidOperationException>(leftOver.AddLedgerServiceAsync)).Message, StringComparison.Ordinal);

        foreach (var (mode, runsIt) in new[] { (EtcdMaintenanceMode.Off, false), (EtcdMaintenanceMode.On, true) })
        {
            var ledgerBuilder = Builder(cluster.ClientSettings(EtcdRoles.Ledger, maintenance: runsIt), mode);
            Assert.False(ledgerBuilder.IsEtcdMaintenanceOnly());
            await ledgerBuilder.AddLedgerServiceAsync();
            await using var ledger = ledgerBuilder.Build();
            Assert.Equal(runsIt, ledger.Services.GetService<EtcdDefragmenter>() is not null);
        }
    }

    private static WebApplicationBuilder Builder(IReadOnlyDictionary<string, string> etcd, EtcdMaintenanceMode mode)
    {
        var builder = InProcessApp.CreateBuilder(etcd: null, Prefix, ServiceRoles.Ledger);
        foreach (var (key, value) in etcd)
        {
            builder.Configuration[key] = value;
        }

        builder.Configuration[$"{EtcdOptions.Section}:{nameof(EtcdOptions.EtcdMaintenance)}"] = mode.ToString();
        return builder;
    }

    /// <summary>Readiness is the last answer of a background check (every few seconds): polled, bounded.</summary>
    private static async Task WaitReadyAsync(HttpClient http, CancellationToken cancellationToken)
    {
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bound.CancelAfter(ReadyBound);
        while (true)
        {
            using var ready = await http.GetAsync("/readyz", bound.Token);
            if (ready.StatusCode == HttpStatusCode.OK)
            {
                return;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), bound.Token);
        }
    }
}

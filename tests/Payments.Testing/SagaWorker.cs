using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Payments.Ledger.Contracts;
using Payments.LocalCluster;
using Payments.Orchestrator.Host.Extensions;
using Payments.Risk.Contracts;
using Payments.Risk.Core;
using Payments.ServiceDefaults.Security;

namespace Payments.Testing;

/// <summary>The orchestrator in the test process, composed by the orchestrator's own <c>AddPaymentsOrchestrator</c> and
/// <c>UsePaymentsOrchestrator</c> and served on a free port (its internal endpoints are what the API calls). The risk
/// rules run in process (the real engine, with limits that let the tests' volumes through), and the ledger is either
/// the ledger service at a URL or a given one (the real ledger behind a fault injector, for the fault tests).</summary>
public static class SagaWorker
{
    /// <summary>Placeholder service URLs: the composition requires them; the parts behind them are replaced here.</summary>
    private const string ReplacedUrl = "http://127.0.0.1:9/";

    public static Task<WebApplication> StartAsync(
        SidecarProcess sidecar, LocalEtcdCluster etcd, string keyPrefix, ILedger ledger, long reviewThresholdMinor,
        IReadOnlyDictionary<string, string>? settings = null) =>
        StartAsync(sidecar, etcd, keyPrefix, ledger, ledgerUrl: null, reviewThresholdMinor, settings);

    /// <param name="settings">Configuration on top of the worker's (e.g. a further caller token).</param>
    public static Task<WebApplication> StartAsync(
        SidecarProcess sidecar, LocalEtcdCluster etcd, string keyPrefix, string ledgerUrl, long reviewThresholdMinor,
        IReadOnlyDictionary<string, string>? settings = null) =>
        StartAsync(sidecar, etcd, keyPrefix, ledger: null, ledgerUrl, reviewThresholdMinor, settings);

    private static async Task<WebApplication> StartAsync(
        SidecarProcess sidecar, LocalEtcdCluster etcd, string keyPrefix, ILedger? ledger, string? ledgerUrl, long reviewThresholdMinor,
        IReadOnlyDictionary<string, string>? settings = null)
    {
        await InProcessApp.GrantAsync(etcd, keyPrefix);
        var builder = InProcessApp.CreateBuilder(etcd, keyPrefix, ServiceRoles.Orchestrator);
        foreach (var (key, value) in settings ?? new Dictionary<string, string>())
        {
            builder.Configuration[key] = value;
        }

        builder.Configuration["DAPR_GRPC_ENDPOINT"] = sidecar.Endpoint;
        builder.Configuration["DAPR_API_TOKEN"] = sidecar.ApiToken; // what the Dapr SDK presents to the sidecar
        builder.Configuration["Payments:LedgerUrl"] = ledgerUrl ?? ReplacedUrl;
        builder.Configuration["Payments:RiskUrl"] = ReplacedUrl;
        builder.AddPaymentsOrchestrator();
        if (ledger is not null)
        {
            builder.Services.RemoveAll<ILedger>();
            builder.Services.AddSingleton(ledger);
        }

        builder.Services.RemoveAll<IRiskAssessor>();
        builder.Services.AddSingleton<IRiskAssessor>(new RiskEngine(
            RiskPolicy.Default with { ReviewThresholdMinor = reviewThresholdMinor, VelocityMaxCount = 100_000, VelocityMaxSumMinor = long.MaxValue / 2 },
            TimeProvider.System));
        var app = builder.Build();
        app.UsePaymentsOrchestrator();
        await app.StartAsync();
        return app;
    }

    /// <summary>Stops the worker within a bound (its stream to the sidecar closes) and disposes it.</summary>
    public static async Task StopAsync(IHost? worker) => await InProcessApp.StopAsync(worker);
}

using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Payments.Etcd;
using Payments.Ledger.Extensions;
using Payments.LocalCluster;
using Payments.Risk.Extensions;
using Payments.ServiceDefaults.Security;

namespace Payments.Testing;

/// <summary>An app host composed in the test process the way its Program.cs composes it, on real HTTP (127.0.0.1, a
/// free port), so tests exercise the same wiring and wire formats as the processes.</summary>
public static class InProcessApp
{
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(5);

    /// <summary>The service identity of this test process's apps: the checks run in every test, as in production.</summary>
    public static LocalServiceIdentity Identity { get; } = new();

    /// <summary>A host for the app in <paramref name="role"/> (<see cref="ServiceRoles"/>), with that role's identity
    /// and its etcd user's certificate (call <see cref="GrantAsync"/> for the prefix first).</summary>
    public static WebApplicationBuilder CreateBuilder(LocalEtcdCluster? etcd, string keyPrefix, string role)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Configuration["Payments:KeyPrefix"] = keyPrefix;
        foreach (var (key, value) in Identity.Settings(role).Concat(EtcdSettings(etcd, role)))
        {
            builder.Configuration[key] = value;
        }

        return builder;
    }

    /// <summary>The <c>Payments</c> etcd settings of the app in <paramref name="role"/>: its own etcd user (the ledger
    /// also the maintenance user), or no certificate for an app that keeps nothing in etcd.</summary>
    public static IReadOnlyDictionary<string, string> EtcdSettings(LocalEtcdCluster? etcd, string role) => etcd is null
        ? new Dictionary<string, string>()
        : etcd.ClientSettings(
            role is EtcdRoles.Ledger or EtcdRoles.Api or EtcdRoles.Orchestrator or EtcdRoles.Failover ? role : null,
            maintenance: role == EtcdRoles.Ledger);

    /// <summary>Grants each app's etcd role its families under <paramref name="keyPrefix"/> (a test's own prefix), as the
    /// chart's bootstrap Job does for the release's prefix. Idempotent.</summary>
    public static Task GrantAsync(LocalEtcdCluster etcd, string keyPrefix, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(etcd);
        return etcd.EnableAuthAsync(EtcdRoles.For(keyPrefix), cancellationToken);
    }

    /// <summary>The ledger service (<c>AddLedgerServiceAsync</c>/<c>UseLedgerService</c>), single-region unless
    /// <paramref name="settings"/> make it a region's. <paramref name="observe"/>, when given, sees every request first
    /// (a fault-injection point; the service's own pipeline is unchanged behind it).</summary>
    public static async Task<WebApplication> StartLedgerServiceAsync(
        LocalEtcdCluster etcd, string keyPrefix, IReadOnlyDictionary<string, string>? settings = null, Func<HttpContext, Func<Task>, Task>? observe = null)
    {
        await GrantAsync(etcd, keyPrefix);
        var builder = CreateBuilder(etcd, keyPrefix, ServiceRoles.Ledger);
        foreach (var (key, value) in settings ?? new Dictionary<string, string>())
        {
            builder.Configuration[key] = value;
        }

        await builder.AddLedgerServiceAsync();
        var app = builder.Build();
        if (observe is not null)
        {
            app.Use(observe);
        }

        app.UseLedgerService();
        await app.StartAsync();
        return app;
    }

    /// <summary>The risk service (<c>AddRiskService</c>/<c>UseRiskService</c>); it keeps its state in memory.</summary>
    /// <param name="settings">Configuration beyond the risk service's own (a test's extra caller, say).</param>
    public static async Task<WebApplication> StartRiskServiceAsync(IReadOnlyDictionary<string, string>? settings = null)
    {
        var builder = CreateBuilder(etcd: null, "/unused/", ServiceRoles.Risk);
        foreach (var (key, value) in settings ?? new Dictionary<string, string>())
        {
            builder.Configuration[key] = value;
        }

        builder.AddRiskService();
        var app = builder.Build();
        app.UseRiskService();
        await app.StartAsync();
        return app;
    }

    /// <summary>The app's base URL, with a trailing slash (what the invocation clients take).</summary>
    public static string BaseUrl(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        return app.Urls.First().TrimEnd('/') + "/";
    }

    public static async Task StopAsync(IHost? app)
    {
        if (app is null)
        {
            return;
        }

        using var stop = new CancellationTokenSource(StopTimeout);
        await app.StopAsync(stop.Token);
        if (app is IAsyncDisposable disposable)
        {
            await disposable.DisposeAsync();
        }
        else
        {
            app.Dispose();
        }
    }
}

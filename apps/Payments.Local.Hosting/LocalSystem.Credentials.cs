using System.Security.Cryptography;
using Payments.ServiceDefaults.Security;

namespace Payments.Local.Hosting;

/// <summary>This run's credentials and the clients and addresses that use them.</summary>
public sealed partial class LocalSystem
{
    /// <summary>The operator's token for the failover service's admin API, generated for this run (region mode; only
    /// the failover service is given it).</summary>
    public string AdminToken { get; } = Convert.ToHexString(RandomNumberGenerator.GetBytes(32)).ToLowerInvariant();

    /// <summary>The operator's token for the API's admin API (merchants and keys), generated for this run: another
    /// credential than the failover service's, as on Kubernetes (issuing keys and switching regions are separate powers).</summary>
    public string ApiAdminToken { get; } = Convert.ToHexString(RandomNumberGenerator.GetBytes(32)).ToLowerInvariant();

    /// <summary>The development workflow sidecar's API token (daprd's <c>DAPR_API_TOKEN</c>), generated for this run:
    /// only the orchestrator is given it, so no other local process can start or end a payment's workflow.</summary>
    public string WorkflowSidecarToken { get; } = Convert.ToHexString(RandomNumberGenerator.GetBytes(32)).ToLowerInvariant();

    /// <summary>The scraper's token for every app's <c>/metrics</c>, generated for this run.</summary>
    public string MetricsToken { get; } = Convert.ToHexString(RandomNumberGenerator.GetBytes(32)).ToLowerInvariant();

    /// <summary>Each app's own base address (what Prometheus would scrape on Kubernetes), with its name.</summary>
    public IEnumerable<(string App, Uri BaseAddress)> AppAddresses()
    {
        yield return ("ledger", new Uri(LedgerUrl));
        yield return (EtcdMaintenanceApp, new Uri(MaintenanceUrl));
        yield return ("risk", new Uri(RiskUrl));
        if (orchestratorPort is { } orchestrator)
        {
            yield return ("orchestrator", new Uri($"http://127.0.0.1:{orchestrator}/"));
        }

        foreach (var replica in ApiReplicaAddresses)
        {
            yield return ("api", replica);
        }

        if (FailoverBaseAddress is { } failover)
        {
            yield return ("failover", failover);
        }
    }

    /// <summary>The API replicas' own addresses (the admin API is not routed by the edge).</summary>
    public IReadOnlyList<Uri> ApiReplicaAddresses { get; private set; } = [];

    /// <summary>A client of the API's admin API (on the first replica), carrying the operator's token.</summary>
    public HttpClient ApiAdminClient(TimeSpan timeout)
    {
        var client = new HttpClient { BaseAddress = ApiReplicaAddresses.FirstOrDefault() ?? throw new InvalidOperationException("The API is not started."), Timeout = timeout };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", ApiAdminToken);
        return client;
    }

    /// <summary>The apps' service identity for this run: a fresh token per internal service.</summary>
    public LocalServiceIdentity Identity { get; } = new();

    /// <summary>A client of the failover service's admin API, carrying the operator's token.</summary>
    public HttpClient FailoverClient(TimeSpan timeout)
    {
        var client = new HttpClient { BaseAddress = FailoverBaseAddress ?? throw new InvalidOperationException("Not a region: no failover service."), Timeout = timeout };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", AdminToken);
        return client;
    }

    /// <summary>Writes this run's tokens — each caller's token for each internal service it calls, the workflow sidecar's API token and, in a
    /// region, the operator's admin token — to a file only this user can read (never to the console or a log), and returns its path.</summary>
    private string WriteCredentials()
    {
        var path = Path.Combine(LogDirectory, "credentials.env");
        // A caller's token for each app it calls: what the app knows that caller by (no sidecar here).
        var lines = Identity.CallTokens.Select(call => $"{call.Caller.ToUpperInvariant()}_TO_{call.Target.ToUpperInvariant()}_TOKEN={call.Token}")
            .Concat([$"API_ADMIN_TOKEN={ApiAdminToken}", $"WORKFLOW_SIDECAR_API_TOKEN={WorkflowSidecarToken}"])
            .Concat(Region is null ? [] : [$"ADMIN_TOKEN={AdminToken}"]);
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite; // created private, never readable by others
        }

        using (var file = new FileStream(path, options))
        using (var writer = new StreamWriter(file))
        {
            writer.Write(string.Join('\n', lines) + "\n");
        }

        return path;
    }
}

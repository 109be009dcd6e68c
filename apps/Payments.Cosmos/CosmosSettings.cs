using System.Text.Json;
using Azure.Core;
using Azure.Identity;
using Microsoft.Azure.Cosmos;

namespace Payments.Cosmos;

/// <summary>How an app proves itself to Cosmos DB.</summary>
public enum CosmosAuth
{
    /// <summary>Microsoft Entra ID through Azure workload identity (the chart's default): no secret in the cluster,
    /// data-plane RBAC limits each app to its containers (docs/security.md). Such an identity cannot create databases
    /// or containers: they are provisioned beforehand (docs/deploy.md).</summary>
    EntraId,

    /// <summary>The account key: the local Cosmos-compatible server, or an account that still allows keys.</summary>
    Key,
}

/// <summary>Configuration section <c>Cosmos</c>: the global database both regions share.</summary>
public sealed class CosmosSettings
{
    public const string Section = "Cosmos";

    /// <summary>How long one check of the account and containers (creating those missing, with a key) may take.</summary>
    public static readonly TimeSpan SetupTimeout = TimeSpan.FromSeconds(60);

    public Uri? Endpoint { get; set; }

    /// <summary>Entra ID unless a key is configured (the local server and the tests set one).</summary>
    public CosmosAuth? Auth { get; set; }

    public string Key { get; set; } = string.Empty;

    public CosmosAuth EffectiveAuth => Auth ?? (Key.Length > 0 ? CosmosAuth.Key : CosmosAuth.EntraId);

    public string Database { get; set; } = "daprpayments";

    public string ControlContainer { get; set; } = "control";

    /// <summary>Container of the replicated journal (pages and one head per region; partition key /id).</summary>
    public string JournalContainer { get; set; } = "journal";

    /// <summary>Container of finished payment records moved out of etcd after their retention (partition key /id).</summary>
    public string ArchiveContainer { get; set; } = "payments-archive";

    /// <summary>Whether Cosmos DB is configured at all (a single-region deployment has none).</summary>
    public bool IsConfigured => Endpoint is not null;

    /// <summary>This region's Cosmos preferred regions, nearest first (ignored with <see cref="LimitToEndpoint"/>).</summary>
    public IList<string> PreferredRegions { get; set; } = [];

    /// <summary>Talk only to <see cref="Endpoint"/> (a single-region account or the local server).</summary>
    public bool LimitToEndpoint { get; set; }

    /// <summary>Local Cosmos-compatible server only (self-signed certificate). Never in production.</summary>
    public bool AcceptAnyServerCertificate { get; set; }

    /// <summary>The local Cosmos-compatible server answers a point read of a missing document with 500 where Cosmos
    /// DB answers 404: with it (and only with it: <see cref="AcceptAnyServerCertificate"/>), such a 500 means "not
    /// there". Against Cosmos DB a 500 stays a fault.</summary>
    public bool ServerErrorMeansMissing => AcceptAnyServerCertificate;

    /// <summary>Per request; well inside the lease timings so a slow Cosmos cannot outlast a renewal.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>The longest <see cref="RequestTimeout"/> taken (an audit: none was checked, and a negative one is no
    /// timeout at all).</summary>
    public static readonly TimeSpan MaxRequestTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Gateway mode and point operations only: the same code runs against the real service and the local
    /// server (which supports neither direct mode nor cross-partition queries).</summary>
    public CosmosClient CreateClient()
    {
        if (RequestTimeout <= TimeSpan.Zero || RequestTimeout > MaxRequestTimeout)
        {
            throw new InvalidOperationException($"Cosmos:RequestTimeout is {RequestTimeout}; use more than 0 and at most {MaxRequestTimeout} (a request must not outlast a lease renewal).");
        }

        var options = new CosmosClientOptions
        {
            ConnectionMode = ConnectionMode.Gateway,
            LimitToEndpoint = LimitToEndpoint,
            RequestTimeout = RequestTimeout,
            MaxRetryAttemptsOnRateLimitedRequests = 3,
            MaxRetryWaitTimeOnRateLimitedRequests = TimeSpan.FromSeconds(2),
            UseSystemTextJsonSerializerWithOptions = new JsonSerializerOptions(JsonSerializerDefaults.Web),
        };
        if (!LimitToEndpoint && PreferredRegions.Count > 0)
        {
            options.ApplicationPreferredRegions = [.. PreferredRegions];
        }

        if (AcceptAnyServerCertificate)
        {
            options.HttpClientFactory = () => new HttpClient(new HttpClientHandler
            {
                ServerCertificateCustomValidationCallback = HttpClientHandler.DangerousAcceptAnyServerCertificateValidator,
            });
        }

        var endpoint = (Endpoint ?? throw new InvalidOperationException("Cosmos:Endpoint is not set.")).ToString();
        return EffectiveAuth == CosmosAuth.Key
            ? new CosmosClient(endpoint, Key.Length > 0 ? Key : throw new InvalidOperationException("Cosmos:Auth is Key but Cosmos:Key is not set."), options)
            : new CosmosClient(endpoint, Credential(), options);
    }

    /// <summary>Workload identity: the pod's federated Kubernetes token exchanged for an Entra ID token
    /// (<c>AZURE_CLIENT_ID</c>, <c>AZURE_TENANT_ID</c>, <c>AZURE_FEDERATED_TOKEN_FILE</c>, which Azure's workload identity
    /// webhook sets on pods labelled <c>azure.workload.identity/use</c>). Only this credential, never a chain that
    /// could fall back to another identity.</summary>
    private static TokenCredential Credential() => new WorkloadIdentityCredential();

    /// <summary>Returns the named containers in the order named — the check an app that talks to Cosmos DB makes before
    /// its first use (<see cref="WaitForContainersAsync"/>), within <see cref="SetupTimeout"/>. With a key it creates what is missing (idempotent); with Entra ID
    /// it only checks that each exists (a data-plane identity may not create them) and says how to provision it.</summary>
    public async Task<IReadOnlyList<Container>> EnsureContainersAsync(CosmosClient client, IReadOnlyList<string> containers, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(containers);
        using var setup = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        setup.CancelAfter(SetupTimeout);
        var account = await client.ReadAccountAsync().WaitAsync(setup.Token);
        if (AccountProblem(account.Consistency.DefaultConsistencyLevel, account.WritableRegions.Count()) is { } problem)
        {
            throw new InvalidOperationException(problem);
        }

        var ensured = new List<Container>();
        foreach (var name in containers)
        {
            if (EffectiveAuth == CosmosAuth.Key)
            {
                ensured.Add(await EnsureContainerAsync(client, Database, name, setup.Token));
                continue;
            }

            var container = client.GetContainer(Database, name);
            try
            {
                await container.ReadContainerAsync(cancellationToken: setup.Token);
            }
            catch (CosmosException exception) when (exception.StatusCode == System.Net.HttpStatusCode.NotFound)
            {
                throw new InvalidOperationException(
                    $"Cosmos DB container {Database}/{name} does not exist. With Entra ID the apps may not create it: provision the " +
                    "database and its containers (partition key /id) first, as docs/deploy.md shows.", exception);
            }

            ensured.Add(container);
        }

        return ensured;
    }

    /// <summary>How long after a failed <see cref="WaitForContainersAsync"/> check the next one starts.</summary>
    public static readonly TimeSpan SetupRetryInterval = TimeSpan.FromSeconds(5);

    /// <summary><see cref="EnsureContainersAsync"/> until it passes, for an app's first loop rather than its start-up: an
    /// app that checked at start-up exited when Cosmos DB (or Entra ID) was away for a minute, and under Kubernetes'
    /// growing back-off came back up to 5 minutes after Cosmos DB did (a review: the ledger and the failover service).
    /// Each failed check (<paramref name="failed"/> is told) is retried after <see cref="SetupRetryInterval"/> until
    /// <paramref name="cancellationToken"/> ends the wait; a misconfigured account (its consistency, a container Entra
    /// ID may not create: <see cref="InvalidOperationException"/>) is no outage to wait out, and is thrown.</summary>
    public async Task<IReadOnlyList<Container>> WaitForContainersAsync(
        CosmosClient client, IReadOnlyList<string> containers, TimeProvider time, Action<int, Exception> failed, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(failed);
        for (var attempt = 1; ; attempt++) // bounded by the caller's token: an outage is waited out, however long, and said
        {
            try
            {
                return await EnsureContainersAsync(client, containers, cancellationToken);
            }
            catch (Exception unreachable) when (unreachable is not InvalidOperationException && !cancellationToken.IsCancellationRequested)
            {
                failed(attempt, unreachable);
                await Task.Delay(SetupRetryInterval, time, cancellationToken);
            }
        }
    }

    /// <summary>The consistency the account must default to: Strong, which the lease and RPO 0 rest on (below); the
    /// local server, which cannot be set so and is never used in production, says Session.</summary>
    public ConsistencyLevel RequiredConsistency => AcceptAnyServerCertificate ? ConsistencyLevel.Session : ConsistencyLevel.Strong;

    /// <summary>What is wrong with an account of this default consistency and number of write regions for the region
    /// lease and the journal (null: nothing). Found in review: nothing checked it. With a weaker level a write-region
    /// failover may lose writes the old write region acknowledged — the active region's last renewals among them — so
    /// the standby could win a record whose lease looked expired while the old region still wrote (two writers), and a
    /// standby could read the journal's head from a replica behind it and take over without the last pages; with more
    /// than one write region ETag compares hold per region only and both regions could win the record (ADR 0003,
    /// docs/deploy.md). The services that decide on the lease and the journal refuse to start on such an account.</summary>
    public string? AccountProblem(ConsistencyLevel defaultConsistency, int writableRegions) =>
        writableRegions > 1
            ? $"The Cosmos DB account has {writableRegions} write regions; the active-region lease needs exactly one (multi-region " +
              "writes settle conflicts by last writer wins, so both regions could hold the lease). Turn multi-region writes off (docs/deploy.md)."
            : writableRegions < 1
                ? "The Cosmos DB account reports no write region; the active-region lease needs exactly one (docs/deploy.md)."
            : defaultConsistency != RequiredConsistency
                ? $"The Cosmos DB account's default consistency is {defaultConsistency}; the active-region lease and the journal need " +
                  $"{RequiredConsistency} (a write-region failover may otherwise lose the active region's last renewals and pages, and both " +
                  "regions could write). Set the account's default consistency to Strong (docs/deploy.md)."
                : null;

    /// <summary>Creates the database and a container partitioned by <c>/id</c> when missing (idempotent).</summary>
    public static async Task<Container> EnsureContainerAsync(CosmosClient client, string database, string container, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        var db = (await client.CreateDatabaseIfNotExistsAsync(database, cancellationToken: cancellationToken)).Database;
        return (await db.CreateContainerIfNotExistsAsync(new ContainerProperties(container, "/id"), cancellationToken: cancellationToken)).Container;
    }
}

using System.Text.Json;
using Microsoft.Azure.Cosmos;

namespace Payments.Failover.Core;

/// <summary>Configuration section <c>Cosmos</c>: the global database both regions share.</summary>
public sealed class CosmosSettings
{
    public const string Section = "Cosmos";

    /// <summary>How long start-up may spend creating the database and containers.</summary>
    public static readonly TimeSpan SetupTimeout = TimeSpan.FromSeconds(60);

    public Uri? Endpoint { get; set; }

    public string Key { get; set; } = string.Empty;

    public string Database { get; set; } = "daprpayments";

    public string ControlContainer { get; set; } = "control";

    /// <summary>Container of the replicated journal (pages and one head per region; partition key /id).</summary>
    public string JournalContainer { get; set; } = "journal";

    /// <summary>This region's Cosmos preferred regions, nearest first (ignored with <see cref="LimitToEndpoint"/>).</summary>
    public IList<string> PreferredRegions { get; set; } = [];

    /// <summary>Talk only to <see cref="Endpoint"/> (a single-region account or the local server).</summary>
    public bool LimitToEndpoint { get; set; }

    /// <summary>Local Cosmos-compatible server only (self-signed certificate). Never in production.</summary>
    public bool AcceptAnyServerCertificate { get; set; }

    /// <summary>Per request; well inside the lease timings so a slow Cosmos cannot outlast a renewal.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Gateway mode and point operations only: the same code runs against the real service and the local
    /// server (which supports neither direct mode nor cross-partition queries).</summary>
    public CosmosClient CreateClient()
    {
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

        return new CosmosClient(
            (Endpoint ?? throw new InvalidOperationException("Cosmos:Endpoint is not set.")).ToString(),
            Key.Length > 0 ? Key : throw new InvalidOperationException("Cosmos:Key is not set."),
            options);
    }

    /// <summary>Creates the database and each named container when missing (idempotent, within <see cref="SetupTimeout"/>)
    /// and returns the containers in the order named: the one start-up step of every app that talks to Cosmos DB.</summary>
    public async Task<IReadOnlyList<Container>> EnsureContainersAsync(CosmosClient client, IReadOnlyList<string> containers)
    {
        ArgumentNullException.ThrowIfNull(containers);
        using var setup = new CancellationTokenSource(SetupTimeout);
        var ensured = new List<Container>();
        foreach (var container in containers)
        {
            ensured.Add(await EnsureContainerAsync(client, Database, container, setup.Token));
        }

        return ensured;
    }

    /// <summary>Creates the database and a container partitioned by <c>/id</c> when missing (idempotent).</summary>
    public static async Task<Container> EnsureContainerAsync(CosmosClient client, string database, string container, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        var db = (await client.CreateDatabaseIfNotExistsAsync(database, cancellationToken: cancellationToken)).Database;
        return (await db.CreateContainerIfNotExistsAsync(new ContainerProperties(container, "/id"), cancellationToken: cancellationToken)).Container;
    }
}

using System.Globalization;
using System.Security.Cryptography;
using DotNet.Testcontainers.Containers;
using Payments.Cosmos;
using Payments.Failover.Core;
using Payments.LocalCluster;

namespace Payments.Containers.Tests;

/// <summary>The failover service as a container on the network, for the attacker scenarios (issue 11): started on
/// first use only, so the other scenarios pay nothing for it. It runs as the standby region of a pair whose active
/// region (<see cref="FailoverPeerRegion"/>) holds the global record with a lease that outlasts the run: a standby
/// never writes this etcd's region epoch nor applies anything while the peer shipped no journal, so the system the
/// other scenarios use is untouched.
/// <para>Cosmos DB is the local Cosmos-compatible server (a node process, not an image) listening on the network's
/// gateway address, the host's side of the bridge, so the container reaches it as a pod reaches Cosmos: over HTTPS
/// from outside the cluster.</para></summary>
public sealed partial class ContainerSystem
{
    public const string FailoverRegion = "region-b";
    public const string FailoverPeerRegion = "region-a";
    private readonly SemaphoreSlim failoverStart = new(1, 1);
    private LocalCosmosServer? cosmos;
    private IContainer? failover;

    /// <summary>The operator's token of the failover admin API (what the chart keeps in <c>region.adminTokenSecretName</c>).</summary>
    public string FailoverAdminToken { get; } = Convert.ToHexString(RandomNumberGenerator.GetBytes(32)).ToLowerInvariant();

    /// <summary>The failover service's container (alias <c>failover</c>), started once and ready (its lease loop
    /// completes ticks against Cosmos and etcd).</summary>
    public async Task<IContainer> FailoverAsync()
    {
        await failoverStart.WaitAsync();
        try
        {
            return failover ??= await StartFailoverAsync();
        }
        finally
        {
            failoverStart.Release();
        }
    }

    private async Task<IContainer> StartFailoverAsync()
    {
        if (!await DockerCli.ImageExistsAsync(Image("failover")))
        {
            throw new InvalidOperationException($"Image {Image("failover")} is missing: run scripts/build-images.sh (the test command does).");
        }

        var gateway = await DockerCli.RunAsync("network", "inspect", "--format", "{{(index .IPAM.Config 0).Gateway}}", NetworkName);
        using var timeout = new CancellationTokenSource(ReadyTimeout);
        cosmos = await LocalCosmosServer.StartAsync(gateway, timeout.Token);
        var settings = new CosmosSettings
        {
            Endpoint = cosmos.Endpoint,
            Key = LocalCosmosServer.Key,
            LimitToEndpoint = true,
            AcceptAnyServerCertificate = true, // the local server's self-signed certificate; never in production
        };
        using (var client = settings.CreateClient())
        {
            var control = (await settings.EnsureContainersAsync(client, [settings.ControlContainer, settings.JournalContainer]))[0];
            await new ActiveRegionStore(control).BootstrapAsync(FailoverPeerRegion, DateTimeOffset.UtcNow.AddDays(1), timeout.Token);
        }

        var environment = new Dictionary<string, string>(AppEnvironment(daprEnabled: false))
        {
            ["Region__Name"] = FailoverRegion,
            ["Region__Role"] = "Standby",
            ["Admin__Token"] = FailoverAdminToken,
            ["Admin__PeerRegion"] = FailoverPeerRegion,
            ["Cosmos__Endpoint"] = cosmos.Endpoint.ToString(),
            ["Cosmos__Key"] = LocalCosmosServer.Key,
            ["Cosmos__LimitToEndpoint"] = "true",
            ["Cosmos__AcceptAnyServerCertificate"] = "true",
            ["Cosmos__RequestTimeout"] = TimeSpan.FromSeconds(5).ToString("c", CultureInfo.InvariantCulture),
        };
        return await StartAppAsync("failover", "failover", environment);
    }
}

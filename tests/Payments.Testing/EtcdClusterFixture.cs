using Microsoft.Extensions.Logging.Abstractions;
using Payments.Etcd;
using Payments.Ledger.Core;
using Payments.Ledger.Core.Retention;
using Payments.LocalCluster;
using Xunit;

namespace Payments.Testing;

/// <summary>A real 3-member etcd cluster (TLS, client certificates, authentication on) shared by a test collection;
/// each test isolates itself under its own key prefix.</summary>
public class EtcdClusterFixture : IAsyncLifetime
{
    public static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(6);

    public LocalEtcdCluster Cluster { get; private set; } = null!;

    public EtcdConnection Connection { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        using var timeout = new CancellationTokenSource(StartTimeout);
        Cluster = await LocalEtcdCluster.StartAsync(3, progress: null, timeout.Token);
        // TLS and authentication on, as in every deployment: this connection is root (the tests' own reads and
        // set-up); apps started on the cluster connect as their own users, limited to their test's prefix
        // (InProcessApp.GrantAsync).
        await Cluster.EnableAuthAsync([], timeout.Token);
        Connection = Cluster.ConnectAsRoot();
    }

    public async Task DisposeAsync()
    {
        Connection?.Dispose();
        if (Cluster is not null)
        {
            await Cluster.DisposeAsync();
        }
    }

    /// <summary>A fresh key prefix: what one test writes, no other test sees.</summary>
    public static string NewPrefix() => $"/test/{Guid.NewGuid():N}/";

    public EtcdLedger NewLedger(TimeProvider? time = null, string? prefix = null, JournalRetentionOptions? retention = null) =>
        new(Connection, prefix ?? NewPrefix(), time ?? TimeProvider.System, NullLogger<EtcdLedger>.Instance, retention: retention);
}

/// <summary>A cluster for tests that kill and pause members, so they never disturb the tests that share the other.</summary>
public sealed class FaultyEtcdClusterFixture : EtcdClusterFixture;

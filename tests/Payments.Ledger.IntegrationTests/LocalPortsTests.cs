using Payments.LocalCluster;

namespace Payments.Ledger.IntegrationTests;

/// <summary>The local clusters' ports: never handed out twice while the counter goes round, never in the OS's
/// ephemeral range, and safe to ask for from many threads (and processes) at once.</summary>
public sealed class LocalPortsTests
{
    [Fact]
    public async Task PortsAskedForAtOnce_AreDistinct_AndBelowTheEphemeralRange()
    {
        var batches = await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => Task.Run(() => LocalPorts.Free(5))));
        var ports = batches.SelectMany(batch => batch).ToArray();

        Assert.Equal(ports.Length, ports.Distinct().Count());
        Assert.All(ports, port => Assert.InRange(port, LocalPorts.FirstPort, LocalPorts.FirstPort + LocalPorts.PortCount - 1));
        Assert.All(ports, port => Assert.True(port < 32_768, $"{port} is in Linux's ephemeral range"));
    }
}

using Payments.Failover.Core.Replication;
using Payments.Ledger.Replication;

namespace Payments.Failover.IntegrationTests;

/// <summary>An audit: the sync wait had no bound of its own, and a negative one (a typo in an override) waited for
/// ever in every sync write. The ledger refuses to start with one outside (0, 60 s], as the chart's schema does.</summary>
public sealed class ReplicationOptionsTests
{
    [Theory]
    [InlineData("-00:00:00.001")]
    [InlineData("00:00:00")]
    [InlineData("00:01:00.001")]
    public void ASyncTimeoutOutsideItsBounds_IsRefused(string timeout)
    {
        var options = new ReplicationOptions { Mode = ReplicationMode.Sync, SyncTimeout = TimeSpan.Parse(timeout, System.Globalization.CultureInfo.InvariantCulture) };

        Assert.Contains("Replication:SyncTimeout", Assert.Throws<InvalidOperationException>(() => options.Validate()).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheDefaultAndTheBound_AreAccepted()
    {
        Assert.NotNull(new ReplicationOptions { Mode = ReplicationMode.Sync }.Validate());
        Assert.NotNull(new ReplicationOptions { Mode = ReplicationMode.Sync, SyncTimeout = ReplicationOptions.MaxSyncTimeout }.Validate());
    }
}

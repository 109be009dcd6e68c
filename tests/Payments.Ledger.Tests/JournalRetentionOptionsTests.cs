using Payments.Ledger.Core.Retention;

namespace Payments.Ledger.Tests;

public sealed class JournalRetentionOptionsTests
{
    [Fact]
    public void TheDefaults_AreSafe_AndCoverTheSagasLongestPayment()
    {
        var options = new JournalRetentionOptions().Validate();
        Assert.True(options.KeepFor > options.ReplayWindow + options.MaxIssuedAhead);
        Assert.True(options.ReplayWindow >= TimeSpan.FromDays(2)); // 24 h approval + a 15-minute hold + budgets, with room
    }

    [Theory]
    [InlineData(60, 1, 61)] // an entry could leave etcd while a retry issued just ahead of the clock is still accepted
    [InlineData(60, 0, 60)]
    [InlineData(60, 5, 30)]
    public void AKeepForThatDoesNotOutlastTheReplayWindow_IsRefusedAtStart(int windowMinutes, int aheadMinutes, int keepMinutes)
    {
        var options = new JournalRetentionOptions
        {
            ReplayWindow = TimeSpan.FromMinutes(windowMinutes),
            MaxIssuedAhead = TimeSpan.FromMinutes(aheadMinutes),
            KeepFor = TimeSpan.FromMinutes(keepMinutes),
        };
        var refused = Assert.Throws<InvalidOperationException>(options.Validate);
        Assert.Contains("apply it again", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void HoldsAreCappedByTheReplayWindow()
    {
        var options = new JournalRetentionOptions { ReplayWindow = TimeSpan.FromHours(1), KeepFor = TimeSpan.FromHours(2) };
        Assert.Equal(TimeSpan.FromHours(1), options.MaxHoldTimeout(TimeSpan.FromDays(30)));
        Assert.Equal(TimeSpan.FromMinutes(30), options.MaxHoldTimeout(TimeSpan.FromMinutes(30)));
    }
}

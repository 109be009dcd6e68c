using Payments.Orchestrator.Workflows;

namespace Payments.Orchestrator.Tests;

/// <summary>The saga's retry pacing: capped exponential backoff with a deterministic jitter.</summary>
public sealed class StepBudgetTests
{
    private static readonly StepBudget Budget = new(TimeSpan.FromMinutes(3), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(15));

    [Fact]
    public void Delays_GrowExponentially_StayBelowTheCap_AndNeverUnderHalfOfIt()
    {
        for (var attempt = 2; attempt <= 40; attempt++)
        {
            var uncapped = TimeSpan.FromSeconds(Math.Pow(2, attempt - 2));
            var ceiling = uncapped < Budget.MaxDelay ? uncapped : Budget.MaxDelay;
            var delay = Budget.DelayBefore(attempt, "pay-1", "hold");

            Assert.InRange(delay, ceiling / 2, ceiling);
        }
    }

    [Fact]
    public void Jitter_IsTheSameOnEveryReplay_AndSpreadsPaymentsApart()
    {
        var first = Budget.DelayBefore(9, "pay-1", "risk");

        Assert.Equal(first, Budget.DelayBefore(9, "pay-1", "risk"));
        var spread = Enumerable.Range(0, 100).Select(index => Budget.DelayBefore(9, $"pay-{index}", "risk")).Distinct().Count();
        Assert.True(spread > 50, $"only {spread} distinct delays for 100 payments");
    }

    [Fact]
    public void MaxAttempts_CoversTheBudget_AtTheShortestDelay()
    {
        Assert.True(Budget.MaxAttempts * (Budget.MaxDelay / 2) >= Budget.Budget);
        Assert.Throws<ArgumentOutOfRangeException>(() => Budget.DelayBefore(1, "pay-1", "hold")); // the first attempt does not wait
    }
}

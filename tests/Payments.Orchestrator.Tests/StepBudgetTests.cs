using Payments.Etcd;
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

    /// <summary>Found in review: the sweeper restarts a run still going past <see cref="Sweeping.SweepPolicy.MaxRunning"/>,
    /// which was the approval deadline plus an hour, while a reviewed payment's first run may legitimately take its risk
    /// step, the wait, the hold, the settlement, the void of a refused settlement and its record, each to its budget
    /// (over an hour since the budget before the pivot went to 10 minutes), each last attempt up to its activity's
    /// 30 s timeouts: a run still making progress was terminated and decided again.</summary>
    [Fact]
    public void TheSweeper_LeavesARunAlone_UntilEveryStepItMayTakeHasHadItsBudget()
    {
        var approval = TimeSpan.FromHours(24);
        var lastAttempts = 6 * TimeSpan.FromSeconds(30);
        var longest = approval + PaymentWorkflow.BeforePivotBudgetNow /* validation (the first saga's) */ + PaymentWorkflow.BeforePivotBudgetNow /* risk */
            + PaymentWorkflow.BeforePivotBudgetNow /* hold */
            + PaymentWorkflow.Pivot.Budget + PaymentWorkflow.Forward.Budget /* void */ + PaymentWorkflow.Forward.Budget /* record */ + lastAttempts;

        Assert.True(Sweeping.SweepPolicy.For(approval).MaxRunning > longest, $"{Sweeping.SweepPolicy.For(approval).MaxRunning} <= {longest}");
    }

    /// <summary>Found in review: Dapr purges a workflow (retention, or the sweeper scheduling it again under its id) by
    /// deleting its whole history in one etcd transaction, refused past the store's maxTxnOps, which was 128 — a
    /// payment that rode out a few minutes of outage has more, and could then neither be purged nor resumed. Every
    /// step of a run at its most attempts (validation, risk and hold before the pivot; the pivot; two compensations,
    /// the late hold's bar and recording forward), each attempt at most six history events (its timer created and
    /// fired, the activity scheduled and answered, and an orchestrator start after each), plus the run's own start,
    /// approval wait and end, must fit the transaction our etcd allows.</summary>
    [Fact]
    public void APaymentsLongestHistory_FitsOneEtcdTransaction()
    {
        const int EventsPerAttempt = 6;
        const int RunEvents = 16;
        var attempts = (3 * PaymentWorkflow.BeforePivot.MaxAttempts) + PaymentWorkflow.Pivot.MaxAttempts + (4 * PaymentWorkflow.Forward.MaxAttempts);

        Assert.InRange((attempts * EventsPerAttempt) + RunEvents, 1, EtcdLimits.MaxTxnOps);
        Assert.True(attempts * EventsPerAttempt > 128, "the bound this test was written for: etcd's default is not enough");
    }
}

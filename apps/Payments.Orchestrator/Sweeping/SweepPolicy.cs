namespace Payments.Orchestrator.Sweeping;

/// <summary>When a payment counts as stuck, and how much one pass of the sweeper does.</summary>
/// <param name="Interval">Between passes (a takeover's full sweep runs its passes back to back).</param>
/// <param name="MissingGrace">A payment record without a workflow is left alone this long after its last change: the
/// API creates the record just before it starts the saga.</param>
/// <param name="MaxRunning">A saga still running this long after its payment was accepted is not progressing (it may
/// legitimately wait for a reviewer up to the approval deadline, plus every step's budget).</param>
public sealed record SweepPolicy(TimeSpan Interval, TimeSpan MissingGrace, TimeSpan MaxRunning)
{
    /// <summary>Records read per page.</summary>
    public const int PageSize = 200;

    /// <summary>Pages per pass: a pass reads at most this many records (then the next pass goes on from the cursor).</summary>
    public const int MaxPagesPerPass = 25;

    /// <summary>Payments resumed, restarted or recorded per pass at most (each costs calls to the workflow engine).</summary>
    public const int MaxActionsPerPass = 200;

    /// <summary>Runs restarted per pass because their history stopped moving (<see cref="StallBound"/>), at most. A lost
    /// work item is one run's misfortune, and a few passes repair dozens; many runs still at once are workers saturated
    /// (a ledger answering at its timeout, its activities queued for minutes behind the worker's concurrency), where each
    /// restart queues one more run behind them while the old run's activities still run (a workflow review): those wait.</summary>
    public const int MaxStallRestartsPerPass = 20;

    public static readonly TimeSpan LockLeaseTtl = TimeSpan.FromSeconds(15);

    /// <summary>How long one pass examines payments at most; it then saves its cursor where it got to and the next pass
    /// goes on from there. A pass asks the workflow engine about each payment past its grace, each call bounded at
    /// <see cref="Workflows.DaprPaymentWorkflows.CallTimeout"/>: with the engine frozen, a pass over
    /// <see cref="MaxPagesPerPass"/> pages took hours, and its cursor, saved only at its end, was lost with the lock or
    /// the process (a review of bounds). At least one payment is examined per pass by each walk (the in-flight markers,
    /// the records' backstop), so every pass makes progress.</summary>
    public TimeSpan PassBudget { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>A running saga (not waiting for a reviewer) whose history has not changed this long is run again: every
    /// step it takes is an activity bounded by its HTTP timeouts (30 s at most) or a retry timer (30 s at most), so its
    /// history moves at least that often. A work item lost between the workflow engine and a worker that disconnected
    /// left a payment pending until MaxRunning — a day (seen in the DR drill under load).</summary>
    public static readonly TimeSpan StallBound = TimeSpan.FromMinutes(3);

    /// <summary>Beyond the longest a first run can legitimately take: its steps' budgets end to end, each last attempt's
    /// own timeout, and time spent waiting for a worker.</summary>
    public static readonly TimeSpan RunningMargin = TimeSpan.FromMinutes(30);

    /// <summary>The longest a saga run can legitimately go on: the steps before the pivot (validation, as the first
    /// saga has it, the risk step and the hold: each the budget before the pivot), the approval wait, the settlement
    /// (<see cref="Workflows.PaymentWorkflow.Pivot"/>), then the void of a refused settlement and the outcome's record
    /// (each <see cref="Workflows.PaymentWorkflow.Forward"/>), plus
    /// <see cref="RunningMargin"/>: with the default budgets 100 minutes past the approval deadline. It was the deadline
    /// plus an hour, set before the budget before the pivot went from 3 to 10 minutes: a reviewed payment approved late
    /// whose ledger then stayed away was restarted while its run still made progress (a review finding).</summary>
    public static TimeSpan LongestRun(TimeSpan approvalTimeout) =>
        approvalTimeout + 3 * Workflows.PaymentWorkflow.BeforePivotBudgetNow + Workflows.PaymentWorkflow.Pivot.Budget
        + 2 * Workflows.PaymentWorkflow.Forward.Budget + RunningMargin;

    public static SweepPolicy For(TimeSpan approvalTimeout) =>
        new(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(15), LongestRun(approvalTimeout));
}

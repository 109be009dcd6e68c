using Dapr.Workflow;

namespace Payments.Orchestrator.Workflows;

/// <summary>How long the saga keeps trying one step through faults (a dependency down, a frozen process, an answer
/// lost), and how it paces the attempts: capped exponential backoff with jitter, measured on the workflow's own clock
/// (<see cref="WorkflowContext.CurrentUtcDateTime"/>), so replays take the same decisions.</summary>
/// <param name="Budget">From the step's first attempt: no attempt starts after it.</param>
public sealed record StepBudget(TimeSpan Budget, TimeSpan FirstDelay, TimeSpan MaxDelay)
{
    /// <summary>Attempts at most, whatever the clock says (a workflow clock that stood still must not loop forever):
    /// enough for the budget at the shortest jittered delay once the cap is reached.</summary>
    public int MaxAttempts => (int)Math.Ceiling(Budget / (MaxDelay / 2)) + 16;

    /// <summary>The wait before attempt <paramref name="attempt"/> (2, 3, …): first delay doubled per attempt, capped,
    /// then scaled into [½, 1) by a jitter that spreads the retries of many payments after an outage apart. The
    /// jitter is a hash of the payment and the attempt: deterministic, as workflow code must be.</summary>
    public TimeSpan DelayBefore(int attempt, string paymentId, string step)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(attempt, 2);
        var exponential = FirstDelay * Math.Pow(2, Math.Min(attempt - 2, 20));
        var capped = exponential < MaxDelay ? exponential : MaxDelay;
        return capped * (0.5 + (Jitter($"{paymentId}/{step}/{attempt}") / 2));
    }

    /// <summary>A fraction in [0, 1) from FNV-1a: the same in every process and every replay.</summary>
    private static double Jitter(string value)
    {
        var hash = 2166136261u;
        foreach (var character in value)
        {
            hash = (hash ^ character) * 16777619u;
        }

        return hash / (double)uint.MaxValue * 0.999_999;
    }
}

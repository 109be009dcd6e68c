using Dapr.Workflow;
using Microsoft.Extensions.Logging;
using Payments.Orchestrator.Activities;
using Payments.Orchestrator.Client.Models;

namespace Payments.Orchestrator.Workflows;

/// <summary>What one step's attempts came to: the activity's answer, or none within the budget (with the last fault).</summary>
public sealed record StepAnswer<T>(T? Value, string? LastFault)
    where T : class
{
    public bool Answered => Value is not null;
}

/// <summary>Calls an activity until it answers or its <see cref="StepBudget"/> ends. An activity answers with a value
/// (a business refusal included); it faults when its dependency is down or its answer is lost — then the call is
/// repeated, which is safe because every effect is keyed by the payment id. No fault ever escapes to fail the
/// workflow: the caller decides what running out of budget means for its step.</summary>
internal static class SagaCalls
{
    /// <summary>The fault an answer named by another run of the saga counts as (<see cref="PaymentInput.Run"/>).</summary>
    public const string AnotherRunsAnswer = "AnotherRunsAnswer: the answer names another run of this payment's saga";

    public static async Task<StepAnswer<T>> UntilAnsweredAsync<T>(
        WorkflowContext context, string activity, object input, StepBudget budget, string paymentId, ILogger log)
        where T : class
    {
        var run = input switch { PaymentInput payment => payment.Run, RecordOutcomeInput record => record.Payment.Run, _ => null };
        var started = context.CurrentUtcDateTime;
        string? lastFault = null;
        for (var attempt = 1; attempt <= budget.MaxAttempts; attempt++)
        {
            if (attempt > 1)
            {
                var delay = budget.DelayBefore(attempt, paymentId, activity);
                if (context.CurrentUtcDateTime - started + delay > budget.Budget)
                {
                    break;
                }

                await context.CreateTimer(delay);
            }

            try
            {
                var answer = await context.CallActivityAsync<T>(activity, input);
                // A run without a token (scheduled before V5) takes every answer, as it always did: its history replays so.
                // An answer without one comes from an orchestrator of before, which names none: taken, as then.
                if (AnsweredForAnotherRun(run, answer))
                {
                    lastFault = AnotherRunsAnswer;
                    log.LogWarning("Payment {PaymentId}: {Activity} attempt {Attempt} was answered for another run of the saga (a terminated run's "
                        + "late answer, delivered by task number); asking again within {Budget}", paymentId, activity, attempt, budget.Budget);
                    continue;
                }

                return new StepAnswer<T>(answer, null);
            }
            catch (WorkflowTaskFailedException exception)
            {
                lastFault = $"{exception.FailureDetails.ErrorType}: {exception.FailureDetails.ErrorMessage}";
                log.LogWarning("Payment {PaymentId}: {Activity} attempt {Attempt} faulted ({Fault}); retrying within {Budget}",
                    paymentId, activity, attempt, lastFault, budget.Budget);
            }
        }

        return new StepAnswer<T>(null, lastFault);
    }

    /// <summary>Whether <paramref name="answer"/> names another run than <paramref name="run"/>: never for a run without
    /// a token (scheduled before V5: its history replays as it ran), nor for an answer without one (an orchestrator of
    /// before, which names none: taken, as then).</summary>
    public static bool AnsweredForAnotherRun(string? run, object? answer) =>
        run is not null && answer is IRunAnswer { Run: { } answeredFor } && !string.Equals(answeredFor, run, StringComparison.Ordinal);
}

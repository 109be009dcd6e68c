using Dapr.Workflow;
using Microsoft.Extensions.Logging;

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
    public static async Task<StepAnswer<T>> UntilAnsweredAsync<T>(
        WorkflowContext context, string activity, object input, StepBudget budget, string paymentId, ILogger log)
        where T : class
    {
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
                return new StepAnswer<T>(await context.CallActivityAsync<T>(activity, input), null);
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
}

using Dapr.Workflow;

namespace Payments.WorkflowSidecar.IntegrationTests;

/// <summary>Exercises what the payment saga uses: chained activities, a durable timer, an external event with a
/// deadline, and custom status. An input ending in <see cref="Brief"/> waits for its event only briefly (a deadline
/// that passes); any other waits long enough for an event raised on a loaded machine (a 2 s wait once lost a
/// rejection raised three calls after its schedule).</summary>
public sealed class ChainWorkflow : Workflow<string, string>
{
    public const string ApprovalEvent = "approval";
    public const string Brief = "|brief";
    public static readonly TimeSpan BriefDeadline = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan LongDeadline = TimeSpan.FromMinutes(2);

    public override async Task<string> RunAsync(WorkflowContext context, string input)
    {
        var brief = input.EndsWith(Brief, StringComparison.Ordinal);
        input = brief ? input[..^Brief.Length] : input;
        context.SetCustomStatus("step-1");
        var first = await context.CallActivityAsync<string>(nameof(AppendActivity), input + "-1");
        await context.CreateTimer(TimeSpan.FromMilliseconds(50));
        context.SetCustomStatus("awaiting-approval");
        bool approved;
        try
        {
            approved = await context.WaitForExternalEventAsync<bool>(ApprovalEvent, brief ? BriefDeadline : LongDeadline);
        }
        catch (TaskCanceledException)
        {
            return first + "-deadline";
        }

        var second = await context.CallActivityAsync<string>(nameof(AppendActivity), first + "-2");
        return second + (approved ? "-approved" : "-rejected");
    }
}

public sealed class AppendActivity : WorkflowActivity<string, string>
{
    public override Task<string> RunAsync(WorkflowActivityContext context, string input) => Task.FromResult(input + "!");
}

/// <summary>One activity whose first run never finishes while <see cref="Gate"/> is closed: a worker that dies mid-activity.</summary>
public sealed class StuckOnceWorkflow : Workflow<string, string>
{
    public override async Task<string> RunAsync(WorkflowContext context, string input) =>
        await context.CallActivityAsync<string>(nameof(StuckActivity), input);
}

public sealed class StuckActivity : WorkflowActivity<string, string>
{
    public static TaskCompletionSource Gate { get; set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public static int Started;

    public override async Task<string> RunAsync(WorkflowActivityContext context, string input)
    {
        Interlocked.Increment(ref Started);
        await Gate.Task;
        return input + "-done";
    }
}

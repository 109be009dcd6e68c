using Dapr.Workflow;

namespace Payments.Testing;

/// <summary>Starts a workflow with a bound: the SDK's overloads without a token wait for the sidecar's answer forever
/// (a CI run once hung for half an hour on one that was answered by something else than the sidecar).</summary>
public static class WorkflowClientExtensions
{
    public static readonly TimeSpan ScheduleTimeout = TimeSpan.FromSeconds(30);

    public static async Task ScheduleBoundedAsync(this DaprWorkflowClient client, string name, string instanceId, object input)
    {
        ArgumentNullException.ThrowIfNull(client);
        using var timeout = new CancellationTokenSource(ScheduleTimeout);
        await client.ScheduleNewWorkflowAsync(name, instanceId, input, null, timeout.Token);
    }
}

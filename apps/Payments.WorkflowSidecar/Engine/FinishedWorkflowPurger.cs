using DurableTask.Core;

namespace Payments.WorkflowSidecar.Engine;

/// <summary>Purges finished workflows after a retention period: the in-memory engine never does (375 MB after ~30,000
/// workflows measured), and a long `--serve` session must not grow without bound.</summary>
internal sealed class FinishedWorkflowPurger(
    UnthrottledInMemoryOrchestrationService engine, TimeProvider time, SidecarOptions options, ILogger<FinishedWorkflowPurger> logger)
    : BackgroundService
{
    private static readonly OrchestrationStatus[] Finished =
        [OrchestrationStatus.Completed, OrchestrationStatus.Failed, OrchestrationStatus.Terminated, OrchestrationStatus.Canceled];

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.PurgeInterval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            var cutoff = time.GetUtcNow().UtcDateTime - options.FinishedRetention;
            var result = await engine.PurgeInstanceStateAsync(new PurgeInstanceFilter(DateTime.MinValue, cutoff, Finished));
            if (result.DeletedInstanceCount > 0)
            {
                logger.LogInformation("Purged {Count} workflows finished before {Cutoff:O}", result.DeletedInstanceCount, cutoff);
            }
        }
    }
}

using Payments.Etcd;
using Payments.Etcd.Regions;
using Payments.Orchestrator.Sweeping;

namespace Payments.Orchestrator.Host.Sweeping;

/// <summary>Runs the stuck-payment sweeper for the life of the orchestrator: a pass every
/// <see cref="SweepPolicy.Interval"/>, passes back to back while a takeover sweep is under way. In a region of a
/// two-region deployment it sweeps only while the region is active: a standby must not resume the active region's
/// payments (its ledger would refuse every write anyway).</summary>
internal sealed partial class StuckPaymentSweeperService(
    StuckPaymentSweeper sweeper, SweepPolicy policy, RegionEpochWatcher region, IConfiguration configuration, TimeProvider time,
    ILogger<StuckPaymentSweeperService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var regional = configuration.IsRegional();
        // The workflow engine's sidecar or the ledger away (no answer over HTTP, a gateway's 502-504, the sidecar's gRPC
        // unavailable) is an outage like etcd's; a 500 or an invalid argument is a defect and keeps its trace.
        var failures = new RecurringFailureLog(logger, "Sweeper pass", time,
            exception => RecurringFailureLog.IsAwayOverHttp(exception) || exception is Dapr.DaprException { InnerException: { } inner } && RecurringFailureLog.IsAway(inner));
        while (!stoppingToken.IsCancellationRequested)
        {
            var report = SweepReport.Idle;
            try
            {
                if (!regional || region.IsWritable)
                {
                    report = await sweeper.SweepOnceAsync(stoppingToken);
                }

                failures.Succeeded();
                SweeperMetrics.Count(report);
                if (report.Actions > 0 || report.Failed > 0 || report.StaleMarkers > 0)
                {
                    LogPass(logger, report.Scanned, report.Resumed, report.Restarted, report.Recorded, report.Redelivered, report.Failed, report.StaleMarkers);
                }
            }
            catch (Exception exception) when (exception is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                // Whatever went wrong, the sweeper must not take the orchestrator down with it: the next pass retries.
                failures.Failed(exception);
            }

            if (!(report.Takeover && !report.CycleCompleted))
            {
                await Task.Delay(policy.Interval, time, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Sweeper pass: {Scanned} records, {Resumed} resumed, {Restarted} restarted, {Recorded} outcomes recorded, {Redelivered} reviews delivered again, {Failed} failed, {StaleMarkers} stale in-flight markers removed")]
    private static partial void LogPass(ILogger logger, int scanned, int resumed, int restarted, int recorded, int redelivered, int failed, int staleMarkers);
}

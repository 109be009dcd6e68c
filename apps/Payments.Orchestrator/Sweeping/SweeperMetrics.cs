using System.Diagnostics.Metrics;
using Payments.Telemetry;

namespace Payments.Orchestrator.Sweeping;

/// <summary>The stuck-payment sweeper's instrument: what each pass did. A sweeper that keeps restarting sagas or
/// failing to resume them for a long time means payments that do not heal (the "stuck payments" alert).</summary>
public static class SweeperMetrics
{
    private static readonly Counter<long> Actions = PaymentsTelemetry.Meter.CreateCounter<long>(
        "payments.sweeper.actions", description: "payments the stuck-payment sweeper acted on, by action (resumed, restarted, recorded, failed)");

    /// <summary>Counts a pass — an idle one too: adding 0 makes every series exist from the first pass, so rate()
    /// and increase() see 0 instead of nothing.</summary>
    public static void Count(SweepReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        foreach (var (action, count) in new[] { ("resumed", report.Resumed), ("restarted", report.Restarted), ("recorded", report.Recorded), ("failed", report.Failed) })
        {
            Actions.Add(count, new KeyValuePair<string, object?>("action", action));
        }
    }
}

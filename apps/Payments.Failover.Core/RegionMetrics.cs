using System.Diagnostics.Metrics;
using Payments.Telemetry;

namespace Payments.Failover.Core;

/// <summary>The region lease's instruments, for the "region not writable" alerts: whether this region may write, and
/// how long the active region's lease in the global record has left.</summary>
public static class RegionMetrics
{
    /// <summary><c>payments.region.writable</c>: 1 while this failover replica's region may write (active, lease held,
    /// catch-up done), else 0. <c>payments.region.lease_remaining</c> (s): until the lease of the region the global
    /// record names ends, as this replica last read it — negative once it has ended and no region took over.</summary>
    public static void Observe(RegionLeaseManager manager, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(manager);
        ArgumentNullException.ThrowIfNull(time);
        var region = new KeyValuePair<string, object?>("region", manager.Region);
        PaymentsTelemetry.Meter.CreateObservableGauge(
            "payments.region.writable", () => new Measurement<int>(manager.IsWritable ? 1 : 0, region),
            description: "1 while this region may write (it holds the active-region lease), else 0");
        PaymentsTelemetry.Meter.CreateObservableGauge(
            "payments.region.lease_remaining",
            () => manager.LastSeen is { } record
                ? [new Measurement<double>((record.LeaseUntil - time.GetUtcNow()).TotalSeconds, region, new KeyValuePair<string, object?>("active_region", record.ActiveRegion))]
                : Array.Empty<Measurement<double>>(),
            unit: "s", description: "time left on the active region's lease in the global record, as last read (negative: expired, nobody took over)");
    }
}

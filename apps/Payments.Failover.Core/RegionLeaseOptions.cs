namespace Payments.Failover.Core;

/// <summary>Configuration section <c>Region</c>: the lease timings of region failover.
/// <para>Safety (no interval with two writable regions) rests on one assumption: the two regions' clocks differ by at
/// most <see cref="MaxClockSkew"/>. The active region writes only until <c>renewSentAt + LeaseDuration −
/// DemoteMargin</c> by its own clock (and its etcd mirror's lease ends no later); the standby promotes only after
/// <c>leaseUntil + PromotionMargin</c> by its clock, where <c>leaseUntil = renewSentAt + LeaseDuration</c> as the
/// active region wrote it. So the gap between the two is at least <c>DemoteMargin + PromotionMargin − 2 ×
/// MaxClockSkew</c>, which <see cref="Validate"/> requires to be positive. RTO after a region loss is about
/// <c>LeaseDuration + PromotionMargin + RenewInterval</c> (default 10 + 4 + 2 = 16 s).</para></summary>
public sealed class RegionLeaseOptions
{
    /// <summary>This region's name, e.g. <c>region-a</c>.</summary>
    public string Name { get; set; } = string.Empty;

    /// <summary><c>active</c> bootstraps the record if there is none; <c>standby</c> never does.</summary>
    public RegionRole Role { get; set; } = RegionRole.Standby;

    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(10);

    public TimeSpan RenewInterval { get; set; } = TimeSpan.FromSeconds(2);

    public TimeSpan DemoteMargin { get; set; } = TimeSpan.FromSeconds(3);

    public TimeSpan PromotionMargin { get; set; } = TimeSpan.FromSeconds(4);

    public TimeSpan MaxClockSkew { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How long the active region may go without holding its epoch in its etcd before it stops renewing the
    /// lease, if its etcd still does not answer: a region that cannot write then lets the other take over by expiry
    /// (about this + <see cref="LeaseDuration"/> + <see cref="PromotionMargin"/>) instead of keeping the lease with no
    /// region writable until someone stops its failover service. Shorter than an etcd leader election would give the
    /// region away for a blip.</summary>
    public TimeSpan YieldAfterEtcdOutage { get; set; } = TimeSpan.FromSeconds(30);

    public RegionLeaseOptions Validate()
    {
        if (string.IsNullOrWhiteSpace(Name))
        {
            throw new InvalidOperationException("Region:Name is required (e.g. region-a).");
        }

        if (!Enum.IsDefined(Role))
        {
            throw new InvalidOperationException($"Region:Role is '{Role}'; use 'active' or 'standby'.");
        }

        if (DemoteMargin < TimeSpan.FromSeconds(1) || DemoteMargin >= LeaseDuration)
        {
            throw new InvalidOperationException("Region:DemoteMargin must be at least 1 s and shorter than Region:LeaseDuration.");
        }

        // The apps stop writing DeadlineMargin before the deadline (a write started then must commit before it), so two
        // renewals must fit with that much to spare, or writes would pause between renewals.
        var margin = Payments.Etcd.Regions.RegionEpochWatcher.DeadlineMargin;
        if (RenewInterval <= TimeSpan.Zero || RenewInterval * 2 + margin > LeaseDuration - DemoteMargin)
        {
            throw new InvalidOperationException(
                $"Region:RenewInterval must allow two renewals and the apps' {margin.TotalSeconds:0} s deadline margin within LeaseDuration − DemoteMargin.");
        }

        if (YieldAfterEtcdOutage < RenewInterval * 2)
        {
            throw new InvalidOperationException("Region:YieldAfterEtcdOutage must be at least two renewals: an etcd leader election must not give the region away.");
        }

        if (DemoteMargin + PromotionMargin <= MaxClockSkew * 2)
        {
            throw new InvalidOperationException(
                "Region:DemoteMargin + Region:PromotionMargin must exceed twice Region:MaxClockSkew, or two regions could both accept writes.");
        }

        return this;
    }
}

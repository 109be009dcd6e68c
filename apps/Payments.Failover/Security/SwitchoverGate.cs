namespace Payments.Failover.Security;

/// <summary>One switchover at a time per failover service. The cool-down and the other processes of the region are
/// checked against the active-region record and the region's etcd (<c>RegionLeaseManager.HandOverAsync</c>).</summary>
internal sealed class SwitchoverGate
{
    private readonly SemaphoreSlim running = new(1, 1);

    /// <summary>True when a switchover may start now (the caller must then call <see cref="Exit"/>).</summary>
    public bool TryEnter() => running.Wait(0);

    public void Exit() => running.Release();
}

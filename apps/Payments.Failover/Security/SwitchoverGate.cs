namespace Payments.Failover.Security;

/// <summary>One switchover at a time per failover service, and none within the cool-down after one completed.</summary>
internal sealed class SwitchoverGate(AdminOptions options, TimeProvider time)
{
    private readonly SemaphoreSlim running = new(1, 1);
    private DateTimeOffset? lastCompletedAt;

    /// <summary>Null when a switchover may start now (the caller must then call <see cref="Exit"/>), else why not and
    /// how long to wait (zero while one is running).</summary>
    public (string Reason, TimeSpan RetryAfter)? TryEnter()
    {
        if (!running.Wait(0))
        {
            return ("A switchover is already in progress on this region.", TimeSpan.Zero);
        }

        var since = time.GetUtcNow() - lastCompletedAt;
        if (since is { } elapsed && elapsed < options.SwitchoverCooldown)
        {
            running.Release();
            return ($"The last switchover completed {elapsed.TotalSeconds:F0} s ago; another is allowed after {options.SwitchoverCooldown.TotalSeconds:F0} s.",
                options.SwitchoverCooldown - elapsed);
        }

        return null;
    }

    /// <param name="completed">Whether the region handed over (starts the cool-down); a refused one does not.</param>
    public void Exit(bool completed)
    {
        if (completed)
        {
            lastCompletedAt = time.GetUtcNow();
        }

        running.Release();
    }
}

using Grpc.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Payments.Etcd.Regions;

/// <summary>What the apps of a region know of its epoch mirror: polled (bounded) from etcd, so the ledger's writes
/// carry the epoch the region currently holds and the API can refuse writes and report not-ready at once when the
/// region is not active. The fence, not this view, is what keeps a demoted region from writing: a stale view only
/// costs a refused write and a refresh — except past the mirror's deadline, which only the apps can enforce (etcd
/// compares no clock, and may keep the key alive past it: <see cref="RegionEpochMirror"/>). Past it, the region is not
/// writable and every fence it hands out fails, until a read finds a later deadline. A stale view holds an earlier
/// deadline, never a later one. This compares the deadline with the app's clock, so the region's clocks count among
/// those bounded by the failover's MaxClockSkew (docs/adr/0003).</summary>
public sealed class RegionEpochWatcher(EtcdConnection etcd, string prefix, TimeProvider time, ILogger? logger = null)
{
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(500);
    private readonly RegionEpochMirror mirror = new(etcd, prefix);
    private long lastKnownEpoch;
    private long untilUnixMs = long.MaxValue;
    private volatile bool writable;
    private volatile bool faulted;

    /// <summary>True when the last read found an epoch mirrored (the region is active) and its deadline has not passed.</summary>
    public bool IsWritable => writable && !PastDeadline;

    public long? Epoch => IsWritable ? Interlocked.Read(ref lastKnownEpoch) : null;

    /// <summary>How long before the deadline writes stop: a write started then may take up to its call's timeout to
    /// commit, and it must commit before the deadline. Renewals keep the deadline at least this far ahead
    /// (RegionLeaseOptions.Validate requires it), so this only bites when they fail.</summary>
    public static readonly TimeSpan DeadlineMargin = EtcdConnection.CallTimeout;

    /// <summary>Whether the region's writable deadline itself (no margin) has passed by this app's clock, as far as the
    /// last read knows: past it, the other region may take over (docs/adr/0003), so what ships from now on may be
    /// after its catch-up read of this region's journal. A stale view holds an earlier deadline: this errs towards true.
    /// No deadline read yet (before the first read, or none written: a failover service older than the deadline key)
    /// counts as not passed, as it does for writes.</summary>
    public bool WriteDeadlinePassed => time.GetUtcNow().ToUnixTimeMilliseconds() >= Interlocked.Read(ref untilUnixMs);

    private bool PastDeadline =>
        time.GetUtcNow().ToUnixTimeMilliseconds() >= Interlocked.Read(ref untilUnixMs) - (long)DeadlineMargin.TotalMilliseconds;

    /// <summary>The fence for the next write: the last epoch seen (a write fails its compare if the mirror is gone), or
    /// one that fails whatever the store holds once the mirror's deadline has passed.</summary>
    public IWriteFence CurrentFence() =>
        new RegionEpochFence(prefix, Math.Max(1, Interlocked.Read(ref lastKnownEpoch)), expired: PastDeadline);

    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        try
        {
            var (epoch, until) = await mirror.ReadHoldAsync(cancellationToken);
            if (epoch is { } held)
            {
                Interlocked.Exchange(ref lastKnownEpoch, held);
                Interlocked.Exchange(ref untilUnixMs, until?.ToUnixTimeMilliseconds() ?? long.MaxValue);
            }

            writable = epoch is not null;
            faulted = false;
        }
        catch (Exception exception) when (exception is RpcException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            writable = false; // cannot tell: do not invite writes (the fence would decide anyway)
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            // A mirror that does not read (a hand edit, a newer version's format) is a region that cannot tell its
            // epoch: not writable, as above. Thrown out of the loop it stopped the host of every API, ledger and
            // orchestrator pod of the region at once. Said once per run of faults: the poll repeats twice a second.
            writable = false;
            if (!faulted)
            {
                faulted = true;
                (logger ?? NullLogger.Instance).LogError(exception, "The region's epoch mirror under {Prefix} does not read; the region is not writable until it does", prefix);
            }
        }
    }

    /// <summary>Refreshes every <see cref="PollInterval"/> until <paramref name="cancellationToken"/> ends.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            await RefreshAsync(cancellationToken);
            try
            {
                await Task.Delay(PollInterval, time, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}

/// <summary>Keeps the region's view of its epoch mirror fresh in an app (see <see cref="RegionEpochWatcher"/>).</summary>
public sealed class RegionEpochWatcherService(RegionEpochWatcher watcher) : Microsoft.Extensions.Hosting.BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => watcher.RunAsync(stoppingToken);
}

using Grpc.Core;

namespace Payments.Etcd.Regions;

/// <summary>What the apps of a region know of its epoch mirror: polled (bounded) from etcd, so the ledger's writes
/// carry the epoch the region currently holds and the API can refuse writes and report not-ready at once when the
/// region is not active. The fence, not this view, is what keeps a demoted region from writing: a stale view only
/// costs a refused write and a refresh.</summary>
public sealed class RegionEpochWatcher(EtcdConnection etcd, string prefix, TimeProvider time)
{
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(500);
    private readonly RegionEpochMirror mirror = new(etcd, prefix);
    private long lastKnownEpoch;
    private volatile bool writable;

    /// <summary>True when the last read found an epoch mirrored (the region is active).</summary>
    public bool IsWritable => writable;

    public long? Epoch => writable ? Interlocked.Read(ref lastKnownEpoch) : null;

    /// <summary>The fence for the next write: the last epoch seen (a write fails its compare if the mirror is gone).</summary>
    public IWriteFence CurrentFence() => new RegionEpochFence(prefix, Math.Max(1, Interlocked.Read(ref lastKnownEpoch)));

    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        try
        {
            var epoch = await mirror.ReadAsync(cancellationToken);
            if (epoch is { } held)
            {
                Interlocked.Exchange(ref lastKnownEpoch, held);
            }

            writable = epoch is not null;
        }
        catch (Exception exception) when (exception is RpcException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            writable = false; // cannot tell: do not invite writes (the fence would decide anyway)
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

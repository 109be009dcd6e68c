using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace Payments.Etcd;

/// <summary>A lock held through an etcd lease, with a fencing token that guarded writes compare in the store.</summary>
/// <remarks>
/// A lease lock alone is not safe (Kleppmann; Jepsen's etcd 3.4.3 analysis): a holder that pauses longer than the
/// lease still believes it holds the lock. So the lock's real guarantee is the fencing token — the lock key's create
/// revision. <see cref="AddFence"/> puts "the lock key still has my create revision" into the same etcd transaction
/// as the guarded write: once the lease expires the key is deleted and a new holder's key has a higher create
/// revision, so a stale holder's write fails in the store, however late it arrives. <see cref="LostToken"/> is only
/// an early warning for holders that are alive to see it.
/// </remarks>
public sealed class EtcdFencedLock : IWriteFence, IAsyncDisposable
{
    public static readonly TimeSpan MinLeaseTtl = TimeSpan.FromSeconds(2);
    public static readonly TimeSpan MaxAcquireWait = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan AcquirePollInterval = TimeSpan.FromMilliseconds(200);

    private readonly EtcdConnection etcd;
    private readonly TimeProvider time;
    private readonly ILogger logger;
    private readonly TimeSpan leaseTtl;
    private readonly CancellationTokenSource lost = new();
    private readonly CancellationTokenSource stopKeepAlive = new();
    private Task keepAlive = Task.CompletedTask;
    private int streamEndpoint;

    private EtcdFencedLock(EtcdConnection etcd, string key, long leaseId, long fencingToken, TimeSpan leaseTtl, TimeProvider time, ILogger logger)
    {
        this.etcd = etcd;
        Key = key;
        LeaseId = leaseId;
        FencingToken = fencingToken;
        this.leaseTtl = leaseTtl;
        this.time = time;
        this.logger = logger;
    }

    public string Key { get; }

    public long LeaseId { get; }

    /// <summary>The lock key's create revision: strictly greater for every later holder.</summary>
    public long FencingToken { get; }

    /// <summary>Fires when the holder can no longer be sure its lease is alive. Guarded writes still carry the fence.</summary>
    public CancellationToken LostToken => lost.Token;

    /// <summary>Takes the lock if it is free; null if someone holds it.</summary>
    /// <param name="time">Real elapsed time for keep-alive deadlines: etcd expires leases by its own clock.</param>
    public static async Task<EtcdFencedLock?> TryAcquireAsync(
        EtcdConnection etcd, string key, string owner, TimeSpan leaseTtl, TimeProvider time, ILogger logger,
        CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(leaseTtl, MinLeaseTtl);
        var ttlSeconds = (long)Math.Ceiling(leaseTtl.TotalSeconds);
        var lease = await EtcdConnection.CallAsync(
            token => etcd.Leases.LeaseGrantAsync(new LeaseGrantRequest { TTL = ttlSeconds }, cancellationToken: token), cancellationToken);
        var request = new TxnRequest();
        request.Compare.Add(EtcdBytes.CreateRevisionIs(key, 0));
        request.Success.Add(EtcdBytes.Put(key, ByteString.CopyFromUtf8(owner), lease.ID));
        TxnResponse response;
        try
        {
            response = await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
        }
        catch (Exception exception) when (exception is RpcException or OperationCanceledException)
        {
            // Outcome unknown: revoking the lease undoes the put if it happened.
            await TryRevokeAsync(etcd, lease.ID, logger);
            throw;
        }

        if (!response.Succeeded)
        {
            await TryRevokeAsync(etcd, lease.ID, logger);
            return null;
        }

        // The put created the key in this transaction, so its create revision is the transaction's revision.
        var held = new EtcdFencedLock(etcd, key, lease.ID, response.Header.Revision, TimeSpan.FromSeconds(ttlSeconds), time, logger);
        held.keepAlive = Task.Run(held.KeepAliveLoopAsync, CancellationToken.None);
        // Debug: most holders take their lock for one pass (the hold-expiry sweeper's every second), and a line per pass
        // was 86,400 a day of the ledger's log saying nothing; losing a lock is what is logged above Debug.
        logger.LogDebug("Acquired lock {LockKey} with fencing token {FencingToken}", key, held.FencingToken);
        return held;
    }

    /// <summary>Waits (polling, bounded by <paramref name="maxWait"/>) until the lock is free and takes it.</summary>
    public static async Task<EtcdFencedLock> AcquireAsync(
        EtcdConnection etcd, string key, string owner, TimeSpan leaseTtl, TimeSpan maxWait, TimeProvider time, ILogger logger,
        CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxWait, MaxAcquireWait);
        var started = time.GetTimestamp();
        while (true)
        {
            if (await TryAcquireAsync(etcd, key, owner, leaseTtl, time, logger, cancellationToken) is { } held)
            {
                return held;
            }

            if (time.GetElapsedTime(started) >= maxWait)
            {
                throw new TimeoutException($"Lock {key} was not free within {maxWait.TotalSeconds} s.");
            }

            await Task.Delay(AcquirePollInterval, time, cancellationToken);
        }
    }

    public string Description => $"lock {Key} with fencing token {FencingToken}";

    /// <summary>Adds this holder's fence to a transaction: it succeeds only while the lock key still has this token.</summary>
    public void AddFence(TxnRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Compare.Add(EtcdBytes.CreateRevisionIs(Key, FencingToken));
        // Read the lock key back on failure, so the caller can tell a lost fence from its own compares failing.
        request.Failure.Add(EtcdBytes.Get(Key));
    }

    /// <summary>True when a failed transaction built with <see cref="AddFence"/> failed because this holder was fenced off.</summary>
    public bool WasFencedOff(TxnResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        if (response.Succeeded)
        {
            return false;
        }

        var lockKey = EtcdBytes.Key(Key);
        var current = response.Responses
            .Where(op => op.ResponseRange is not null)
            .SelectMany(op => op.ResponseRange.Kvs)
            .FirstOrDefault(kv => kv.Key == lockKey);
        return current is null || current.CreateRevision != FencingToken;
    }

    /// <summary>Stops renewing without releasing: what a holder frozen by a GC pause or a SIGSTOP looks like to etcd.</summary>
    internal async Task SimulatePauseAsync()
    {
        await stopKeepAlive.CancelAsync();
        await keepAlive;
    }

    public async ValueTask DisposeAsync()
    {
        await stopKeepAlive.CancelAsync();
        await keepAlive;
        // Revoking deletes the key only if it is still attached to our lease, so this never frees another holder's lock.
        await TryRevokeAsync(etcd, LeaseId, logger);
        await lost.CancelAsync();
        lost.Dispose();
        stopKeepAlive.Dispose();
    }

    private async Task KeepAliveLoopAsync()
    {
        var interval = leaseTtl / 3;
        // The lease is surely alive until one TTL after the last renewal etcd acknowledged, measured from when we sent it.
        var lastRenewalSent = time.GetTimestamp();
        var stop = stopKeepAlive.Token;
        AsyncDuplexStreamingCall<LeaseKeepAliveRequest, LeaseKeepAliveResponse>? stream = null;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                var sentAt = time.GetTimestamp();
                var (renewal, open) = await TryRenewAsync(stream, stop);
                stream = open;
                if (renewal == Renewal.Renewed)
                {
                    lastRenewalSent = sentAt;
                }
                else if (renewal == Renewal.StreamBroken)
                {
                    stream?.Dispose();
                    stream = null;
                }

                if (renewal == Renewal.LeaseGone || time.GetElapsedTime(lastRenewalSent) >= leaseTtl - interval)
                {
                    logger.LogWarning("Lock {LockKey} lost: lease {LeaseId} not renewed in time", Key, LeaseId);
                    await lost.CancelAsync();
                    return;
                }

                await Task.Delay(interval, time, stop);
            }
        }
        catch (Exception exception) when (exception is OperationCanceledException or RpcException && stop.IsCancellationRequested)
        {
            // Released or paused.
        }
        finally
        {
            stream?.Dispose();
        }
    }

    private async Task<(Renewal Outcome, AsyncDuplexStreamingCall<LeaseKeepAliveRequest, LeaseKeepAliveResponse>? Stream)> TryRenewAsync(
        AsyncDuplexStreamingCall<LeaseKeepAliveRequest, LeaseKeepAliveResponse>? stream, CancellationToken stop)
    {
        try
        {
            if (stream is null)
            {
                streamEndpoint = etcd.CurrentEndpoint;
                stream = etcd.Leases.LeaseKeepAlive(cancellationToken: stop);
            }

            await stream.RequestStream.WriteAsync(new LeaseKeepAliveRequest { ID = LeaseId }, stop);
            using var deadline = EtcdConnection.CallDeadline(stop);
            if (!await stream.ResponseStream.MoveNext(deadline.Token))
            {
                return (Renewal.StreamBroken, stream);
            }

            // TTL 0 means etcd no longer knows the lease: it expired, and the key went with it.
            return (stream.ResponseStream.Current.TTL > 0 ? Renewal.Renewed : Renewal.LeaseGone, stream);
        }
        catch (Exception exception) when (exception is RpcException or OperationCanceledException or InvalidOperationException && !stop.IsCancellationRequested)
        {
            logger.LogDebug(exception, "Keep-alive for lease {LeaseId} failed; retrying on a new stream", LeaseId);
            etcd.MoveOff(streamEndpoint);
            return (Renewal.StreamBroken, stream);
        }
    }

    private static async Task TryRevokeAsync(EtcdConnection etcd, long leaseId, ILogger logger)
    {
        try
        {
            await EtcdConnection.CallAsync(
                token => etcd.Leases.LeaseRevokeAsync(new LeaseRevokeRequest { ID = leaseId }, cancellationToken: token), CancellationToken.None);
        }
        catch (RpcException exception)
        {
            // The lease expires by itself within its TTL; nothing is held past that.
            logger.LogDebug(exception, "Could not revoke lease {LeaseId}", leaseId);
        }
    }

    private enum Renewal
    {
        Renewed,
        StreamBroken,
        LeaseGone,
    }
}

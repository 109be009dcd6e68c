using System.Globalization;
using Etcdserverpb;

namespace Payments.Etcd.Regions;

/// <summary>The region's copy of the epoch it holds in the global active-region record, in its own etcd, where every
/// ledger write compares it (<see cref="RegionEpochFence"/>). Written only by the region's failover service: on each
/// successful lease renewal it is put again on a fresh etcd lease that ends no later than the region's own demotion
/// deadline, so a failover service that dies or hangs leaves a mirror that vanishes by itself; a demotion deletes it.
/// An epoch never goes backwards here.</summary>
public sealed class RegionEpochMirror(EtcdConnection etcd, string prefix)
{
    /// <summary>etcd rounds lease TTLs to whole seconds; shorter holds are refused rather than silently lengthened.</summary>
    public static readonly TimeSpan MinHold = TimeSpan.FromSeconds(1);

    public string Key { get; } = RegionEpochFence.KeyFor(prefix);

    /// <summary>Puts <paramref name="epoch"/> for at most <paramref name="hold"/> (rounded down to whole seconds).
    /// The lease is granted before the put, so it expires no later than <paramref name="hold"/> after this call began.
    /// False when a higher epoch is already mirrored (this region was superseded; it must not write).</summary>
    public async Task<bool> HoldAsync(long epoch, TimeSpan hold, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(epoch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(hold, MinHold);
        var lease = await EtcdConnection.CallAsync(
            token => etcd.Leases.LeaseGrantAsync(new LeaseGrantRequest { TTL = (long)Math.Floor(hold.TotalSeconds) }, cancellationToken: token),
            cancellationToken);
        var current = await ReadWithRevisionAsync(cancellationToken);
        if (current.Epoch > epoch)
        {
            await RevokeQuietlyAsync(lease.ID);
            return false;
        }

        var request = new TxnRequest();
        request.Compare.Add(EtcdBytes.ModRevisionIs(Key, current.ModRevision));
        request.Success.Add(EtcdBytes.Put(Key, RegionEpochFence.Encode(epoch), lease.ID));
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
        if (!response.Succeeded)
        {
            // Another instance of this region's failover service wrote it meanwhile: fine if it holds the same epoch
            // (its lease keeps the key), refused if it holds a higher one.
            await RevokeQuietlyAsync(lease.ID);
            return (await ReadWithRevisionAsync(cancellationToken)).Epoch == epoch;
        }

        if (current.LeaseId != 0 && current.LeaseId != lease.ID)
        {
            await RevokeQuietlyAsync(current.LeaseId); // the previous hold's lease is no longer needed
        }

        return true;
    }

    /// <summary>Demotion: the region stops accepting writes at once (in-flight ledger transactions fail their compare).</summary>
    public async Task ReleaseAsync(CancellationToken cancellationToken) =>
        await EtcdConnection.CallAsync(token => etcd.Kv.DeleteRangeAsync(new DeleteRangeRequest { Key = EtcdBytes.Key(Key) }, cancellationToken: token), cancellationToken);

    /// <summary>The mirrored epoch, or null when the region holds none (not writable).</summary>
    public async Task<long?> ReadAsync(CancellationToken cancellationToken)
    {
        var current = await ReadWithRevisionAsync(cancellationToken);
        return current.ModRevision == 0 ? null : current.Epoch;
    }

    private async Task<(long Epoch, long ModRevision, long LeaseId)> ReadWithRevisionAsync(CancellationToken cancellationToken)
    {
        var response = await EtcdConnection.CallAsync(
            token => etcd.Kv.RangeAsync(new RangeRequest { Key = EtcdBytes.Key(Key) }, cancellationToken: token), cancellationToken);
        var kv = response.Kvs.FirstOrDefault();
        return kv is null ? (0, 0, 0) : (long.Parse(kv.Value.ToStringUtf8(), NumberStyles.None, CultureInfo.InvariantCulture), kv.ModRevision, kv.Lease);
    }

    private async Task RevokeQuietlyAsync(long leaseId)
    {
        try
        {
            await EtcdConnection.CallAsync(token => etcd.Leases.LeaseRevokeAsync(new LeaseRevokeRequest { ID = leaseId }, cancellationToken: token), CancellationToken.None);
        }
        catch (Grpc.Core.RpcException)
        {
            // It expires by itself within its TTL; nothing depends on revoking it early.
        }
    }
}

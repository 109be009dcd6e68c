using System.Globalization;
using Etcdserverpb;
using Google.Protobuf;

namespace Payments.Etcd.Regions;

/// <summary>The region's copy of the epoch it holds in the global active-region record, in its own etcd, where every
/// ledger write compares it (<see cref="RegionEpochFence"/>). Written only by the region's failover service: on each
/// successful lease renewal it is put again on a fresh etcd lease that ends no later than the region's own demotion
/// deadline, so a failover service that dies or hangs leaves a mirror that vanishes by itself. A demotion deletes it:
/// any hold of the region's when another region holds the record, only its own when a process missed its deadline.
/// An epoch never goes backwards here.
/// <para>The lease alone is not a deadline: etcd gives every lease its whole TTL again when it elects a new leader
/// (the lessor's promotion), so after a leader change the key can outlive the region's deadline by up to a hold —
/// while the standby may already have taken over. So the deadline itself is written beside the epoch
/// (<see cref="UntilKeyFor"/>, same transaction, same lease), and the apps stop writing when their clock passes it
/// (<see cref="RegionEpochWatcher"/>), whatever the lease does.</para>
/// <para>A planned switchover closes its epoch here (<see cref="BeginHandOverAsync"/>): the region runs more than
/// one failover process, and one whose renewal succeeded just before the hand-over could otherwise put the epoch back
/// after it was deleted, while the other region, handed the record, starts writing without waiting for any lease.
/// A hold of a closed epoch is refused, in the same compare-and-swap that puts it.</para></summary>
public sealed class RegionEpochMirror(EtcdConnection etcd, string prefix, TimeProvider? clock = null)
{
    private readonly TimeProvider clock = clock ?? TimeProvider.System;

    /// <summary>The etcd lease of this instance's last successful hold (0: none), which <see cref="ReleaseOwnAsync"/>
    /// compares: each failover process of the region holds the mirror on a lease of its own.</summary>
    private long heldLease;

    /// <summary>etcd rounds lease TTLs to whole seconds; shorter holds are refused rather than silently lengthened.</summary>
    public static readonly TimeSpan MinHold = TimeSpan.FromSeconds(1);

    public string Key { get; } = RegionEpochFence.KeyFor(prefix);

    /// <summary>The key that holds the mirror's deadline (Unix milliseconds), beside <see cref="Key"/>.</summary>
    public string UntilKey { get; } = UntilKeyFor(prefix);

    public static string UntilKeyFor(string prefix) => EtcdBytes.AsPrefix(prefix) + "region/active-until";

    /// <summary>The hand-over marker, <c>{epoch}:{untilUnixMs}</c>: the epoch a planned switchover closed and the end
    /// of the lease it renewed before it began (no etcd lease: it must outlive any hold of that epoch; one key per
    /// region, overwritten by the next switchover).</summary>
    public string HandOverKey { get; } = EtcdBytes.AsPrefix(prefix) + "region/active-handover";

    /// <summary>The last epoch the region held (no etcd lease: it outlives the mirror), put with every hold. With
    /// <see cref="HandOverKey"/> it tells whether the region's last epoch ended by a planned switchover — everything it
    /// wrote then shipped — or by a loss, after which what it wrote last may never have reached the other region.</summary>
    public string LastEpochKey { get; } = EtcdBytes.AsPrefix(prefix) + "region/active-last";

    /// <summary>Puts <paramref name="epoch"/> for at most <paramref name="hold"/> (rounded down to whole seconds).
    /// The lease is granted before the put, so it expires no later than <paramref name="hold"/> after this call began.
    /// False when a higher epoch is already mirrored (this region was superseded; it must not write).</summary>
    public Task<bool> HoldAsync(long epoch, TimeSpan hold, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(hold, MinHold);
        return HoldUntilAsync(epoch, clock.GetUtcNow() + hold, clock, cancellationToken);
    }

    /// <summary><see cref="HoldAsync"/> to an absolute <paramref name="deadline"/> (on <paramref name="deadlineClock"/>,
    /// the caller's: the lease manager's may be a test's), never past it: the region's writable end, computed before
    /// this call. Given as a duration computed by the caller, a process paused before this call held the epoch that
    /// much past the region's deadline, into the time the other region may take over. False (nothing held) when less
    /// than <see cref="MinHold"/> is left.</summary>
    public async Task<bool> HoldUntilAsync(long epoch, DateTimeOffset deadline, TimeProvider deadlineClock, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(epoch, 1);
        ArgumentNullException.ThrowIfNull(deadlineClock);
        LastDropped = 0;
        if (deadline - deadlineClock.GetUtcNow() < MinHold)
        {
            return false;
        }

        // Read, and a lost epoch's work dropped, before the lease is granted: the drop takes as long as that work is
        // large, and a lease granted first could end under it (a diff review). What was read is compared by the hold's
        // own transaction, so a change since (another failover process's hold, a hand-over) fails it.
        var current = await ReadWithRevisionAsync(cancellationToken);
        if (current.Epoch > epoch || current.HandOver.Epoch >= epoch)
        {
            return false;
        }

        LastDropped = await DropLostEpochDeliveriesAsync(current, epoch, cancellationToken);
        var hold = deadline - deadlineClock.GetUtcNow();
        if (hold < MinHold)
        {
            return false;
        }

        // Counted before the lease is granted, like the lease's own end: neither ends later than hold after this call.
        var until = clock.GetUtcNow() + TimeSpan.FromSeconds(Math.Floor(hold.TotalSeconds));
        var lease = await EtcdConnection.CallAsync(
            token => etcd.Leases.LeaseGrantAsync(new LeaseGrantRequest { TTL = (long)Math.Floor(hold.TotalSeconds) }, cancellationToken: token),
            cancellationToken);
        var request = new TxnRequest();
        request.Compare.Add(EtcdBytes.ModRevisionIs(Key, current.ModRevision));
        request.Compare.Add(EtcdBytes.ModRevisionIs(HandOverKey, current.HandOver.ModRevision)); // no hand-over began since the read
        request.Compare.Add(EtcdBytes.ModRevisionIs(LastEpochKey, current.LastEpochRevision)); // nor a hold, whose drop was not this one's
        request.Success.Add(EtcdBytes.Put(Key, RegionEpochFence.Encode(epoch), lease.ID));
        request.Success.Add(EtcdBytes.Put(UntilKey, ByteString.CopyFromUtf8(until.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture)), lease.ID));
        request.Success.Add(EtcdBytes.Put(LastEpochKey, RegionEpochFence.Encode(epoch)));
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
        if (!response.Succeeded)
        {
            // Another instance of this region's failover service wrote it meanwhile: fine if it holds the same epoch
            // (its lease keeps the key), refused if it holds a higher one or a switchover closed this one.
            await RevokeQuietlyAsync(lease.ID);
            var now = await ReadWithRevisionAsync(cancellationToken);
            return now.Epoch == epoch && now.HandOver.Epoch < epoch;
        }

        heldLease = lease.ID;
        if (current.LeaseId != 0 && current.LeaseId != lease.ID)
        {
            await RevokeQuietlyAsync(current.LeaseId); // the previous hold's lease is no longer needed
        }

        return true;
    }

    /// <summary>Webhook work dropped by this instance's last <see cref="HoldUntilAsync"/> (see
    /// <see cref="DropLostEpochDeliveriesAsync"/>): outbox markers and owed deliveries; 0 when none.</summary>
    public long LastDropped { get; private set; }

    /// <summary>Keys deleted per transaction when a lost epoch's webhook work is dropped.</summary>
    public const int DropBatch = 1_000;

    /// <summary>Batches per family at most in one hold: 10 million keys, far past any outbox or backlog of owed
    /// deliveries etcd's quota can hold; past it the hold goes on and the rest stays (logged by the caller's count).</summary>
    public const int MaxDropBatches = 10_000;

    /// <summary>Before the region takes <paramref name="epoch"/>: when the last epoch it held was lost (not handed over)
    /// and another region has held an epoch since (a gap: a region that lapses and takes the record back goes from N
    /// to N + 1), its webhook outbox and owed deliveries are the lost epoch's, of changes that may never have reached
    /// the region that took over and that it may have decided otherwise — a payment A recorded failed that B, resuming
    /// it, completed. A passive lost region does not deliver them (ADR 0005); made writable again (a fail-back) it sent
    /// them all, days late, signed and valid (a review finding). They go now, before the region can write: a passive
    /// region writes no outbox marker (every such write carries the fence), so everything there is the lost epoch's.
    /// Their events stay in the log (<c>GET /v1/events</c>). Each batch compares the last-epoch key and the mirror, so
    /// nothing is deleted once another failover process of the region has taken the epoch.</summary>
    private async Task<long> DropLostEpochDeliveriesAsync(MirrorState current, long epoch, CancellationToken cancellationToken)
    {
        var handedOver = current.HandOver.ModRevision != 0 && current.HandOver.Epoch == current.LastEpoch;
        if (current.LastEpoch == 0 || epoch <= current.LastEpoch + 1 || handedOver)
        {
            return 0;
        }

        long dropped = 0;
        foreach (var root in new[] { EtcdBytes.AsPrefix(prefix) + EtcdOptions.WebhookOutboxFamily, EtcdBytes.AsPrefix(prefix) + EtcdOptions.WebhookDueFamily })
        {
            var from = EtcdBytes.Key(root);
            for (var batch = 0; batch < MaxDropBatches; batch++)
            {
                // Each page from past the last one deleted: from the family's first key, etcd would visit every key
                // deleted before it again (etcd-io/etcd#11057), a cost growing with the square of the backlog.
                var page = await EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(new RangeRequest
                {
                    Key = from, RangeEnd = EtcdBytes.PrefixEnd(root), Limit = DropBatch, KeysOnly = true,
                }, cancellationToken: token), cancellationToken);
                if (page.Kvs.Count == 0)
                {
                    break;
                }

                var through = ByteString.CopyFrom([.. page.Kvs[^1].Key.Span, 0]); // the last key read, included
                var request = new TxnRequest();
                request.Compare.Add(EtcdBytes.ModRevisionIs(LastEpochKey, current.LastEpochRevision));
                request.Compare.Add(EtcdBytes.ModRevisionIs(Key, current.ModRevision));
                request.Success.Add(new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = from, RangeEnd = through } });
                var response = await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
                if (!response.Succeeded)
                {
                    return dropped; // held meanwhile by another process of the region, which dropped them first
                }

                dropped += response.Responses[0].ResponseDeleteRange.Deleted;
                from = through;
            }
        }

        return dropped;
    }

    /// <summary>Demotion: the region stops accepting writes at once (in-flight ledger transactions fail their compare).</summary>
    public Task ReleaseAsync(CancellationToken cancellationToken) => DeleteHoldAsync(null, cancellationToken);

    /// <summary><see cref="ReleaseAsync"/> of a mirrored epoch up to <paramref name="epoch"/> (another region holds the
    /// record at it): a higher one is a hold another failover process of this region put after winning the record
    /// since, and stays. Compared by the mirror's revision, so nothing put after the read is deleted.</summary>
    public async Task ReleaseUpToAsync(long epoch, CancellationToken cancellationToken)
    {
        var current = await ReadWithRevisionAsync(cancellationToken);
        if (current.ModRevision == 0 || current.Epoch > epoch)
        {
            return;
        }

        await DeleteHoldAsync(EtcdBytes.ModRevisionIs(Key, current.ModRevision), cancellationToken);
    }

    /// <summary><see cref="ReleaseAsync"/>, but only while the mirror is still this instance's own hold: a process
    /// whose deadline passed unrenewed, or that found its epoch superseded, deleted the hold another failover process
    /// of the region had just renewed, and the region stopped writing until that one's next tick.</summary>
    public async Task ReleaseOwnAsync(CancellationToken cancellationToken)
    {
        var lease = heldLease;
        if (lease == 0)
        {
            return; // never held here
        }

        var ownLease = new Compare { Key = EtcdBytes.Key(Key), Target = Compare.Types.CompareTarget.Lease, Result = Compare.Types.CompareResult.Equal, Lease = lease };
        await DeleteHoldAsync(ownLease, cancellationToken);
    }

    /// <summary>Deletes the hold (epoch and deadline) in one transaction, if <paramref name="onlyIf"/> holds (null: always).</summary>
    private async Task DeleteHoldAsync(Compare? onlyIf, CancellationToken cancellationToken)
    {
        var request = new TxnRequest();
        if (onlyIf is not null)
        {
            request.Compare.Add(onlyIf);
        }

        request.Success.Add(EtcdBytes.Delete(Key));
        request.Success.Add(EtcdBytes.Delete(UntilKey));
        await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
    }

    /// <summary>A planned switchover's first step: the region stops writing at once (as <see cref="ReleaseAsync"/>)
    /// and <paramref name="epoch"/> is closed: no failover process of the region can hold it again
    /// (<see cref="HoldUntilAsync"/>). <paramref name="until"/> is the end of the lease the switchover renewed: past
    /// it, a marker still standing under a record the region still holds means the switchover's process stopped
    /// midway. Returns the marker's revision, for <see cref="EndHandOverAsync"/>.</summary>
    public async Task<long> BeginHandOverAsync(long epoch, DateTimeOffset until, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(epoch, 1);
        var request = new TxnRequest();
        request.Success.Add(EtcdBytes.Delete(Key));
        request.Success.Add(EtcdBytes.Delete(UntilKey));
        request.Success.Add(EtcdBytes.Put(HandOverKey, ByteString.CopyFromUtf8(
            string.Create(CultureInfo.InvariantCulture, $"{epoch}:{until.ToUnixTimeMilliseconds()}"))));
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
        return response.Header.Revision;
    }

    /// <summary>A switchover abandoned before the record moved (replication did not catch up): its epoch may be held
    /// again. Removes the marker only if it is still the one written at <paramref name="revision"/>.</summary>
    public async Task EndHandOverAsync(long revision, CancellationToken cancellationToken)
    {
        var request = new TxnRequest();
        request.Compare.Add(EtcdBytes.ModRevisionIs(HandOverKey, revision));
        request.Success.Add(EtcdBytes.Delete(HandOverKey));
        await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
    }

    /// <summary>The epoch the last planned switchover closed and the end of the lease it renewed, or null when no
    /// switchover ever began in this region (or the last one was abandoned).</summary>
    public async Task<(long Epoch, DateTimeOffset Until)?> ReadHandOverAsync(CancellationToken cancellationToken)
    {
        var handOver = (await ReadWithRevisionAsync(cancellationToken)).HandOver;
        return handOver.ModRevision == 0 ? null : (handOver.Epoch, handOver.Until);
    }

    /// <summary>True when the region holds no epoch now and the last one it held was closed by a planned switchover
    /// (<see cref="BeginHandOverAsync"/>): everything it wrote under it was shipped before the other region took over.
    /// False after a loss (or an abandoned switchover), and while it holds an epoch.</summary>
    public async Task<bool> LastEpochHandedOverAsync(CancellationToken cancellationToken)
    {
        var current = await ReadWithRevisionAsync(cancellationToken);
        return current.ModRevision == 0 && current.LastEpoch > 0 && current.HandOver.ModRevision != 0 && current.HandOver.Epoch == current.LastEpoch;
    }

    /// <summary>The last epoch the region held (0: none yet), whether or not it holds one now.</summary>
    public async Task<long> ReadLastEpochAsync(CancellationToken cancellationToken) => (await ReadWithRevisionAsync(cancellationToken)).LastEpoch;

    /// <summary>The mirrored epoch, or null when the region holds none (not writable).</summary>
    public async Task<long?> ReadAsync(CancellationToken cancellationToken) => (await ReadHoldAsync(cancellationToken)).Epoch;

    /// <summary>The mirrored epoch and its deadline, in one read; the deadline is null for a mirror written before
    /// there was one (the lease alone bounds it then).</summary>
    public async Task<(long? Epoch, DateTimeOffset? Until)> ReadHoldAsync(CancellationToken cancellationToken)
    {
        var (epoch, modRevision, _, until, _, _, _) = await ReadWithRevisionAsync(cancellationToken);
        return (modRevision == 0 ? null : epoch, modRevision == 0 ? null : until);
    }

    /// <summary>The mirror's keys as read in one range; revisions 0 for keys that are not there.</summary>
    private readonly record struct MirrorState(
        long Epoch, long ModRevision, long LeaseId, DateTimeOffset? Until, HandOverMarker HandOver, long LastEpoch, long LastEpochRevision);

    private async Task<MirrorState> ReadWithRevisionAsync(CancellationToken cancellationToken)
    {
        // The keys in one range: "region/active-epoch", "-until", "-handover" and "-last" are the only keys under "region/active-".
        var from = EtcdBytes.AsPrefix(prefix) + "region/active-";
        var response = await EtcdConnection.CallAsync(
            token => etcd.Kv.RangeAsync(new RangeRequest { Key = EtcdBytes.Key(from), RangeEnd = EtcdBytes.PrefixEnd(from) }, cancellationToken: token),
            cancellationToken);
        var kv = response.Kvs.FirstOrDefault(item => item.Key == EtcdBytes.Key(Key));
        var untilKv = response.Kvs.FirstOrDefault(item => item.Key == EtcdBytes.Key(UntilKey));
        DateTimeOffset? until = untilKv is not null && long.TryParse(untilKv.Value.ToStringUtf8(), NumberStyles.None, CultureInfo.InvariantCulture, out var ms)
            ? DateTimeOffset.FromUnixTimeMilliseconds(ms)
            : null;
        var handOver = HandOverMarker.From(response.Kvs.FirstOrDefault(item => item.Key == EtcdBytes.Key(HandOverKey)));
        var lastKv = response.Kvs.FirstOrDefault(item => item.Key == EtcdBytes.Key(LastEpochKey));
        var last = lastKv is null ? 0 : long.Parse(lastKv.Value.ToStringUtf8(), NumberStyles.None, CultureInfo.InvariantCulture);
        var lastRevision = lastKv?.ModRevision ?? 0;
        return kv is null
            ? new MirrorState(0, 0, 0, null, handOver, last, lastRevision)
            : new MirrorState(long.Parse(kv.Value.ToStringUtf8(), NumberStyles.None, CultureInfo.InvariantCulture), kv.ModRevision, kv.Lease, until, handOver, last, lastRevision);
    }

    /// <summary>The hand-over marker as read; epoch 0 and revision 0 when there is none.</summary>
    private readonly record struct HandOverMarker(long Epoch, DateTimeOffset Until, long ModRevision)
    {
        public static HandOverMarker From(Mvccpb.KeyValue? kv)
        {
            if (kv is null)
            {
                return default;
            }

            // Written only by BeginHandOverAsync; anything else there is a defect, not a state to guess about.
            var text = kv.Value.ToStringUtf8();
            var colon = text.IndexOf(':', StringComparison.Ordinal);
            return new HandOverMarker(
                long.Parse(text.AsSpan(0, colon), NumberStyles.None, CultureInfo.InvariantCulture),
                DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture)),
                kv.ModRevision);
        }
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

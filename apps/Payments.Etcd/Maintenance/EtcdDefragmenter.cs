using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Etcdserverpb;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Payments.Telemetry;

namespace Payments.Etcd.Maintenance;

/// <summary>Keeps etcd's database files bounded. Compaction (the members' <c>--auto-compaction-*</c> flags) frees the
/// pages of old revisions but does not shrink the file, and etcd's quota counts the file: so, one member at a time —
/// followers first, the leader last, since a member being defragmented stalls and the leader stalling costs the
/// cluster an election — each member whose file is mostly free pages is defragmented, only while every member answers.
/// One defragmenter works at a time, under a fenced lock. A NOSPACE alarm is met without the lock (etcd grants no
/// lease then): compaction, every member defragmented, and the alarm disarmed if every member is then well below its
/// quota (the recovery etcd documents; docs/runbooks/etcd-nospace.md). Exports each member's file size and size in use.</summary>
/// <remarks>Defragmentation is not a write a fence can guard (it is not a transaction): the lock keeps two
/// defragmenters from stalling two members at once, and the lock's loss stops this one before its next member —
/// outside NOSPACE, which takes no lock (<see cref="RecoverFromNoSpaceAsync"/>). Correctness never depends on it —
/// only availability does.</remarks>
public sealed partial class EtcdDefragmenter(EtcdConnection etcd, string lockKey, DefragPolicy policy, ILogger<EtcdDefragmenter> logger)
{
    private static readonly TimeSpan StatusTimeout = TimeSpan.FromSeconds(5);
    private readonly ConcurrentDictionary<int, (long Size, long InUse)> sizes = new();
    private int answering = -1;

    /// <summary>What one pass saw and did.</summary>
    public sealed record Pass(int Members, int Defragmented, bool AlarmDisarmed, long LargestDbSizeBytes);

    /// <summary>Registers the gauges (once per process: the meter keeps them).</summary>
    public void ExportMetrics()
    {
        PaymentsTelemetry.Meter.CreateObservableGauge("payments.etcd.db_size", () => Measure(size => size.Size), unit: "By",
            description: "etcd database file size per member (what the quota counts)");
        PaymentsTelemetry.Meter.CreateObservableGauge("payments.etcd.db_size_in_use", () => Measure(size => size.InUse), unit: "By",
            description: "etcd database size in use per member (live data after compaction)");
        PaymentsTelemetry.Meter.CreateObservableGauge("payments.etcd.quota", () => policy.EffectiveQuotaBytes, unit: "By",
            description: "etcd backend quota (--quota-backend-bytes)");
        // A member down leaves the cluster one failure from losing its majority, and a member whose volume was lost
        // stays down until someone takes it back (docs/runbooks/etcd-member-lost.md): the alert compares these two.
        PaymentsTelemetry.Meter.CreateObservableGauge("payments.etcd.members", () => etcd.MemberCount,
            description: "etcd members the storage maintenance is configured with");
        PaymentsTelemetry.Meter.CreateObservableGauge("payments.etcd.members_answering", MeasureAnswering,
            description: "etcd members that answered the last pass's status call");
    }

    /// <summary>One pass, if this process gets the lock (else null) or etcd is out of space.</summary>
    public async Task<Pass?> RunOnceAsync(CancellationToken cancellationToken)
    {
        // Reads first, without the lock: under NOSPACE etcd grants no lease and takes no put (its capped applier refuses
        // both: etcd server/etcdserver/apply.go, applierV3Capped), so the fenced lock cannot be had then, and a recovery
        // that waited for it never ran — the region stayed out of space until someone came.
        var statuses = await StatusesAsync(cancellationToken);
        if (statuses.Count > 0 && await NoSpaceAlarmsAsync(statuses.Keys.First(), cancellationToken) is { Count: > 0 })
        {
            return await RecoverFromNoSpaceAsync(statuses, cancellationToken);
        }

        await using var held = await EtcdFencedLock.TryAcquireAsync(
            etcd, lockKey, Environment.MachineName + "/" + Environment.ProcessId, DefragPolicy.LockLeaseTtl, TimeProvider.System, logger, cancellationToken);
        if (held is null)
        {
            return null;
        }

        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, held.LostToken);
        statuses = await StatusesAsync(linked.Token);
        if (statuses.Count < etcd.MemberCount)
        {
            // A member that did not answer may be down: one more stalled by a defragmentation would leave the others
            // without a quorum, and every write of the region would wait for it.
            logger.LogWarning("etcd: {Answered} of {Members} members answered; no member is defragmented this pass", statuses.Count, etcd.MemberCount);
            return new Pass(statuses.Count, 0, false, statuses.Count == 0 ? 0 : statuses.Values.Max(status => status.DbSize));
        }

        var defragmented = await DefragmentEachAsync(statuses, Worthwhile, linked.Token);
        var after = defragmented > 0 ? await StatusesAsync(linked.Token) : statuses;
        return new Pass(after.Count, defragmented, false, after.Count == 0 ? 0 : after.Values.Max(status => status.DbSize));
    }

    /// <summary>etcd's documented recovery: compact to the current revision, defragment every member that answers,
    /// disarm if there is room. Without the lock (none can be had): compaction and disarming are idempotent, and a
    /// second recovery at once (the maintenance Deployment runs one pod, but a rollout may overlap two for a moment)
    /// could stall two members, which costs reads only while NOSPACE refuses every write anyway. The alarm is read
    /// again before each member: once another recovery disarmed it, writes are back and this one stops. A member down
    /// does not stop it either: defragmenting one of the others stalls reads for a while, but without it the region
    /// stays out of space until the member is back.</summary>
    private async Task<Pass> RecoverFromNoSpaceAsync(Dictionary<int, StatusResponse> statuses, CancellationToken cancellationToken)
    {
        await CompactToCurrentAsync(cancellationToken);
        var member = statuses.Keys.First();
        var defragmented = await DefragmentEachAsync(
            statuses, _ => true, cancellationToken, stillWanted: async token => await NoSpaceAlarmsAsync(member, token) is { Count: > 0 });
        var after = await StatusesAsync(cancellationToken);
        var disarmed = await DisarmNoSpaceIfRoomAsync(after, cancellationToken);
        return new Pass(after.Count, defragmented, disarmed, after.Count == 0 ? 0 : after.Values.Max(status => status.DbSize));
    }

    /// <summary>Followers first, the leader last: a stalled leader costs the cluster an election, a stalled follower
    /// nothing. Stops before the next member once <paramref name="cancellationToken"/> is cancelled (the lock lost).</summary>
    private async Task<int> DefragmentEachAsync(
        Dictionary<int, StatusResponse> statuses, Func<StatusResponse, bool> wanted, CancellationToken cancellationToken,
        Func<CancellationToken, Task<bool>>? stillWanted = null)
    {
        var defragmented = 0;
        foreach (var (member, status) in statuses.OrderBy(pair => pair.Value.Header.MemberId == pair.Value.Leader ? 1 : 0))
        {
            if (wanted(status))
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (stillWanted is not null && !await stillWanted(cancellationToken))
                {
                    break;
                }

                await DefragmentAsync(member, status, cancellationToken);
                defragmented++;
            }
        }

        return defragmented;
    }

    /// <summary>Passes every <see cref="DefragPolicy.Interval"/> until cancelled; a failed pass is logged and retried next time.</summary>
    public async Task RunAsync(TimeProvider time, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(time);
        var failures = new RecurringFailureLog(logger, "etcd maintenance pass", time);
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await RunOnceAsync(cancellationToken);
                failures.Succeeded();
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return; // stopping, mid-pass: a clean end, not a failure
            }
            catch (Exception exception)
            {
                // Maintenance must never take its host down: the next pass retries.
                failures.Failed(exception);
            }

            await Task.Delay(policy.Interval, time, cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    private bool Worthwhile(StatusResponse status) =>
        status.DbSize >= policy.MinDbSizeBytes && status.DbSize - status.DbSizeInUse >= status.DbSize * policy.MinFreeFraction;

    private IEnumerable<Measurement<int>> MeasureAnswering()
    {
        var count = Volatile.Read(ref answering);
        return count < 0 ? [] : [new Measurement<int>(count)];
    }

    /// <summary>Every member that answers, by its index in the connection's endpoints (a member down is skipped).</summary>
    private async Task<Dictionary<int, StatusResponse>> StatusesAsync(CancellationToken cancellationToken)
    {
        var statuses = new Dictionary<int, StatusResponse>();
        for (var member = 0; member < etcd.MemberCount; member++)
        {
            try
            {
                var status = await etcd.MemberMaintenance(member).StatusAsync(
                    new StatusRequest(), deadline: DateTime.UtcNow + StatusTimeout, cancellationToken: cancellationToken);
                statuses[member] = status;
                sizes[member] = (status.DbSize, status.DbSizeInUse);
            }
            catch (RpcException exception)
            {
                logger.LogWarning("etcd member {Member} did not report its status ({Status}); skipped this pass", member, exception.StatusCode);
            }
        }

        Volatile.Write(ref answering, statuses.Count);
        return statuses;
    }

    private async Task DefragmentAsync(int member, StatusResponse status, CancellationToken cancellationToken)
    {
        LogDefragmenting(logger, member, status.DbSize, status.DbSizeInUse, status.Header.MemberId == status.Leader);
        await etcd.MemberMaintenance(member).DefragmentAsync(
            new DefragmentRequest(), deadline: DateTime.UtcNow + DefragPolicy.DefragTimeout, cancellationToken: cancellationToken);
    }

    private async Task<bool> DisarmNoSpaceIfRoomAsync(IReadOnlyDictionary<int, StatusResponse> statuses, CancellationToken cancellationToken)
    {
        if (statuses.Count == 0)
        {
            return false;
        }

        var maintenance = etcd.MemberMaintenance(statuses.Keys.First());
        var noSpace = await NoSpaceAlarmsAsync(statuses.Keys.First(), cancellationToken);
        var roomy = statuses.Values.All(status => status.DbSize < policy.EffectiveQuotaBytes * DefragPolicy.DisarmBelowQuotaFraction);
        if (noSpace.Count == 0 || !roomy)
        {
            if (noSpace.Count > 0)
            {
                logger.LogError("etcd NOSPACE alarm stays armed: the live data is near the quota ({Quota} bytes); see docs/runbooks/etcd-nospace.md", policy.EffectiveQuotaBytes);
            }

            return false;
        }

        foreach (var alarm in noSpace)
        {
            await maintenance.AlarmAsync(
                new AlarmRequest { Action = AlarmRequest.Types.AlarmAction.Deactivate, MemberID = alarm.MemberID, Alarm = AlarmType.Nospace },
                deadline: DateTime.UtcNow + StatusTimeout, cancellationToken: cancellationToken);
        }

        logger.LogWarning("etcd NOSPACE alarm disarmed after defragmenting: every member is below {Fraction:P0} of its quota", DefragPolicy.DisarmBelowQuotaFraction);
        return true;
    }

    private async Task<IReadOnlyList<AlarmMember>> NoSpaceAlarmsAsync(int member, CancellationToken cancellationToken)
    {
        var alarms = await etcd.MemberMaintenance(member).AlarmAsync(
            new AlarmRequest { Action = AlarmRequest.Types.AlarmAction.Get }, deadline: DateTime.UtcNow + StatusTimeout, cancellationToken: cancellationToken);
        return alarms.Alarms.Where(alarm => alarm.Alarm == AlarmType.Nospace).ToArray();
    }

    /// <summary>Drops all history up to now (watchers behind it must resync): what a full database needs first.</summary>
    private async Task CompactToCurrentAsync(CancellationToken cancellationToken)
    {
        var current = await EtcdConnection.CallAsync(
            token => etcd.Kv.RangeAsync(new RangeRequest { Key = EtcdBytes.Key("/"), Limit = 1, CountOnly = true }, cancellationToken: token), cancellationToken);
        try
        {
            await EtcdConnection.CallAsync(
                token => etcd.Kv.CompactAsync(new CompactionRequest { Revision = current.Header.Revision, Physical = true }, cancellationToken: token), cancellationToken);
        }
        catch (RpcException exception) when (exception.StatusCode == StatusCode.OutOfRange)
        {
            return; // already compacted there (by etcd's own compactor, or a recovery beside this one)
        }

        logger.LogError("etcd NOSPACE alarm raised: compacted to revision {Revision} before defragmenting every member", current.Header.Revision);
    }

    private IEnumerable<Measurement<long>> Measure(Func<(long Size, long InUse), long> pick) =>
        sizes.Select(pair => new Measurement<long>(pick(pair.Value), new KeyValuePair<string, object?>("member", pair.Key)));

    [LoggerMessage(Level = LogLevel.Warning, Message = "Defragmenting etcd member {Member}: {DbSize} bytes on disk, {InUse} in use (leader: {IsLeader})")]
    private static partial void LogDefragmenting(ILogger logger, int member, long dbSize, long inUse, bool isLeader);
}

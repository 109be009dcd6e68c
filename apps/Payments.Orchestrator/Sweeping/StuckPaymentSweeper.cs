using System.Text.Json;
using Etcdserverpb;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Payments.Domain;
using Payments.Etcd;
using Payments.Orchestrator.Client.Gateway;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Client.Records;
using Payments.Orchestrator.Workflows;

namespace Payments.Orchestrator.Sweeping;

/// <summary>Nothing stays stuck: walks the unfinished payments (their in-flight markers, a bounded page at a time,
/// with its cursor in etcd) and resumes every one whose saga is missing (the engine lost it, or the API crashed before
/// starting it), ended without an outcome (failed, or settlement undetermined), ended with an outcome its record missed,
/// or stopped progressing. Resuming runs the saga again with the same payment id, so every transfer replays: whatever
/// an earlier run applied counts once.</summary>
/// <remarks>
/// A pass costs what is in flight, not every record kept: the walk used to read every record, finished ones included
/// (up to 5,000 per pass, every 5 s — and a full cycle over months of records took hours, so a stuck payment waited
/// as long). The records themselves are still walked, one page per pass, as a backstop for an unfinished record
/// without a marker (one written before markers existed).
/// One sweeper works at a time, under a fenced lock; the cursor and the takeover flag are written with the lock's fence.
/// After a region takes over, its failover service sets the takeover flag (<see cref="SweepRequests.RequestTakeoverSweepAsync"/>):
/// the sweeper then resumes every unfinished payment without waiting for grace periods, pass after pass, until a full
/// cycle has gone by — and a restarted orchestrator goes on from the cursor.
/// </remarks>
public sealed class StuckPaymentSweeper(
    PaymentRecordStore records, DaprPaymentWorkflows workflows, EtcdConnection etcd, EtcdOptions layout, SweepPolicy policy,
    TimeSpan approvalTimeout, TimeProvider time, ILogger<StuckPaymentSweeper> logger)
{
    private readonly string lockKey = SweepRequests.LockKey(layout);
    private readonly string cursorKey = SweepRequests.CursorKey(layout);
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly string takeoverKey = SweepRequests.TakeoverKey(layout);

    /// <summary>Where the walks are (<paramref name="Cursor"/>: the backstop over the records; <paramref name="InFlight"/>:
    /// the in-flight markers), which takeover (epoch) the current cycle serves, if any, and <paramref name="Since"/> when
    /// this sweeper first served that epoch (its clock), kept with <paramref name="Served"/> after the cycle: the same
    /// epoch asked for again (its failover process restarted, and asks at every start) keeps its first cut-off, or every
    /// saga the region had started since would count as left over and be run again.</summary>
    private sealed record SweeperState(string? Cursor, string? Serving, string? InFlight = null, DateTimeOffset? Since = null, string? Served = null);

    /// <summary>When this region's last takeover cycle began: a saga run started before is this region's leftover from
    /// an earlier epoch (<see cref="ResumeIfStuckAsync"/>), in the cycle and after it — a run whose restart failed in the
    /// cycle (the engine slow, away) was otherwise left to itself once the flag was cleared: waiting for a reviewer who
    /// had decided in the other region, it failed the payment at its deadline. Null before any takeover. Set per pass,
    /// under the lock.</summary>
    private DateTimeOffset? staleBefore;

    /// <summary>When the current pass stops examining (<see cref="SweepPolicy.PassBudget"/>). Set per pass, under the lock.</summary>
    private DateTimeOffset passEnds;

    /// <summary>One pass, if this process gets the lock (else <see cref="SweepReport.Idle"/>).</summary>
    public async Task<SweepReport> SweepOnceAsync(CancellationToken cancellationToken)
    {
        await using var held = await EtcdFencedLock.TryAcquireAsync(
            etcd, lockKey, Environment.MachineName + "/" + Environment.ProcessId, SweepPolicy.LockLeaseTtl, TimeProvider.System, logger, cancellationToken);
        if (held is null)
        {
            return SweepReport.Idle;
        }

        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, held.LostToken);
        var (state, takeover) = await ReadStateAsync(linked.Token);
        if (takeover is not null && OlderThan(takeover, state.Serving ?? state.Served))
        {
            // A request for an older epoch than one already served or being served: delayed (the failover service asks
            // again for minutes) past a newer takeover's. Its cycle would start with a later cut-off, and every saga
            // this region started since the newer takeover would count as left over and be run again (a review).
            await WriteStateAsync(held, state, takeover, linked.Token); // clears the flag if it still holds that epoch
            takeover = null;
        }

        // A takeover not yet served starts its cycle from the first unfinished payment.
        var fresh = takeover is not null && state.Serving != takeover;
        // The cut-off of this epoch's cycle: kept from its first serving, and written before the walk, so a pass that
        // fails midway does not move it (each later cut-off made the runs restarted before it "left over" again).
        DateTimeOffset? since = takeover is null ? null
            : !fresh || state.Served == takeover ? state.Since ?? time.GetUtcNow()
            : time.GetUtcNow();
        if (takeover is not null && (fresh || state.Since is null))
        {
            state = fresh ? state with { Serving = takeover, Since = since, InFlight = null } : state with { Since = since };
            await WriteStateAsync(held, state, null, linked.Token);
        }

        staleBefore = since ?? state.Since;
        passEnds = time.GetUtcNow() + policy.PassBudget;
        var report = new SweepReport(0, 0, 0, 0, 0, false, takeover is not null);
        var examined = new HashSet<string>(StringComparer.Ordinal);
        var (inFlight, afterInFlight) = await WalkInFlightAsync(state.InFlight, report, examined, linked.Token);
        var (cursor, afterBackstop) = await WalkRecordsAsync(state.Cursor, afterInFlight, examined, linked.Token);
        report = afterBackstop;
        if (report.StallsDeferred > 0)
        {
            logger.LogWarning("Sweeper: {Deferred} more sagas stopped progressing than a pass restarts ({Max}); left for later passes. "
                + "Many at once usually means the workflow workers are saturated (a dependency answering at its timeout), not lost work",
                report.StallsDeferred, SweepPolicy.MaxStallRestartsPerPass);
        }

        var served = takeover is not null && report.CycleCompleted ? takeover : null;
        await WriteStateAsync(held, served is null
                ? state with { Cursor = cursor, InFlight = inFlight }
                : new SweeperState(cursor, null, inFlight, since, Served: served),
            served, linked.Token);
        return report;
    }

    /// <summary>Up to <see cref="SweepPolicy.MaxPagesPerPass"/> pages of in-flight markers from <paramref name="cursor"/>;
    /// the cycle completes when the walk reaches the end (the cursor then starts again from the first).</summary>
    private async Task<(string? Cursor, SweepReport Report)> WalkInFlightAsync(
        string? cursor, SweepReport report, HashSet<string> examined, CancellationToken cancellationToken)
    {
        for (var page = 0; page < SweepPolicy.MaxPagesPerPass && report.Actions < SweepPolicy.MaxActionsPerPass; page++)
        {
            var markers = await records.ListInFlightAsync(cursor, SweepPolicy.PageSize, cancellationToken);
            if (markers.Count == 0)
            {
                return (null, report with { CycleCompleted = true });
            }

            var found = await records.GetManyWithRevisionsAsync([.. markers.Select(marker => marker.PaymentId)], cancellationToken);
            var (lastExamined, capped) = (cursor, false);
            foreach (var (marker, paymentId) in markers)
            {
                if (report.Actions >= SweepPolicy.MaxActionsPerPass || OutOfTime(examined))
                {
                    // The rest of the page waits for the next pass: passed over, it waited for the next cycle — one
                    // that is no takeover cycle any more, whose rules do not look for a run left over from before.
                    capped = true;
                    break;
                }

                if (found.TryGetValue(paymentId, out var entry) && examined.Add(paymentId))
                {
                    report = await ExamineAsync(entry.Record, report, cancellationToken);
                }

                lastExamined = marker;
            }

            // A marker outlives its payment only where its deletion never arrived (a standby's copy made before the
            // replicator derived it): it would count against the merchant's payments in flight for ever.
            var stale = markers
                .Where(marker => !found.TryGetValue(marker.PaymentId, out var entry) || entry.Record.IsTerminal)
                .Select(marker => (marker.Marker, marker.PaymentId, RecordMissing: !found.ContainsKey(marker.PaymentId)))
                .ToArray();
            if (stale.Length > 0)
            {
                report = report with { StaleMarkers = report.StaleMarkers + await records.DeleteStaleMarkersAsync(stale, cancellationToken) };
            }

            cursor = capped ? lastExamined : markers[^1].Marker;
            if (capped)
            {
                break;
            }
        }

        return (cursor, report);
    }

    /// <summary>The backstop: one page of records from <paramref name="cursor"/>, each not examined this pass.</summary>
    private async Task<(string? Cursor, SweepReport Report)> WalkRecordsAsync(
        string? cursor, SweepReport report, HashSet<string> examined, CancellationToken cancellationToken)
    {
        // At least one record per pass, even when the in-flight walk used the pass's time (an engine slow at every call,
        // a takeover's cycle): else the backstop's cursor never moved (a review).
        var batch = await records.ListAsync(cursor, SweepPolicy.PageSize, cancellationToken);
        var walked = 0;
        foreach (var record in batch)
        {
            if (walked++ > 0 && OutOfTime(examined))
            {
                return (cursor, report); // from the last one examined, next pass
            }

            if (examined.Add(record.PaymentId))
            {
                report = await ExamineAsync(record, report, cancellationToken);
            }

            cursor = record.PaymentId;
        }

        return (batch.Count == 0 ? null : batch[^1].PaymentId, report);
    }

    /// <summary>Past the pass's budget, once at least one payment was examined (each pass makes progress).</summary>
    private bool OutOfTime(HashSet<string> examined) => examined.Count > 0 && time.GetUtcNow() >= passEnds;

    private async Task<SweepReport> ExamineAsync(PaymentRecord record, SweepReport report, CancellationToken cancellationToken)
    {
        report = report with { Scanned = report.Scanned + 1 };
        if (record.IsTerminal || report.Actions >= SweepPolicy.MaxActionsPerPass)
        {
            return report;
        }

        try
        {
            return await ResumeIfStuckAsync(record, report, cancellationToken);
        }
        catch (Exception exception) when (exception is Grpc.Core.RpcException or InvalidOperationException or Payments.Ledger.Contracts.RegionNotWritableException
                                          || (exception is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            // Left as it is: the next cycle finds it again (a region demoted meanwhile changes no record: the fence).
            logger.LogWarning("Sweeper: could not resume payment {PaymentId} ({Error}); the next cycle retries", record.PaymentId, exception.Message);
            return report with { Failed = report.Failed + 1 };
        }
        catch (Exception exception) when (!cancellationToken.IsCancellationRequested)
        {
            // Anything else (contention on its record, a saga's output that does not read): this payment is left for
            // the next cycle, and the pass goes on. Thrown, it ended the pass before its cursor was saved, so every
            // pass stopped at the same payment and those after it were never swept.
            logger.LogError(exception, "Sweeper: could not resume payment {PaymentId}; the next cycle retries", record.PaymentId);
            return report with { Failed = report.Failed + 1 };
        }
    }

    private async Task<SweepReport> ResumeIfStuckAsync(PaymentRecord record, SweepReport report, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        if (!report.Takeover && now - record.UpdatedAt <= policy.MissingGrace)
        {
            // Changed within the grace: its saga is at work (every rule below waits for the grace anyway, or concerns a
            // saga that ended and records its own outcome). Not asking the workflow engine about each payment in flight
            // at every pass spares it a call per young record (hundreds per pass under load).
            return report;
        }

        var input = new PaymentInput(record.Order, RemainingApprovalTime(record, now), CreatedAt: record.CreatedAt);
        var state = await workflows.GetAsync(record.PaymentId, cancellationToken);
        // How long this run has been going: since the payment's creation, or since the run was started again if later —
        // counted from creation alone, a run the sweeper had just started for an old payment was "running too long"
        // at once and restarted at the next pass, again and again, whenever it could not finish between two passes.
        var runningFor = now - (state?.StartedAt is { } started && started > record.CreatedAt ? started : record.CreatedAt);
        if (staleBefore is { } takeoverBegan && state?.StartedAt is { } startedAt && startedAt < takeoverBegan)
        {
            return await RunAgainFromBeforeTheTakeoverAsync(record, state, input, report, cancellationToken);
        }

        switch (state)
        {
            case null when report.Takeover || now - record.UpdatedAt > policy.MissingGrace:
                logger.LogWarning("Sweeper: payment {PaymentId} has no saga; starting it", record.PaymentId);
                // Resumed, not started: an earlier run may have got past the decision (ResumedPaymentWorkflow).
                await workflows.ResumeAsync(input, cancellationToken);
                return report with { Resumed = report.Resumed + 1 };
            case { Ended: true, Outcome: { } outcome } when PaymentStatus.IsTerminal(outcome.Status):
                await records.RecordOutcomeAsync(record.PaymentId, outcome, now, cancellationToken);
                return report with { Recorded = report.Recorded + 1 };
            case { Ended: false, Step: PaymentStep.AwaitingApproval } when record.Review is { } review && record.Status == PaymentStatus.AwaitingApproval
                                                                            && runningFor <= policy.MaxRunning:
                // Recorded, never delivered: the API records a decision before it sends it, and a send that failed
                // (the orchestrator away) left the saga waiting until its deadline — failing a payment a reviewer had
                // approved — unless the reviewer retried. The saga takes one decision; a second stays unread.
                logger.LogWarning("Sweeper: payment {PaymentId}'s recorded review ({Decision}) never reached its saga; sending it again",
                    record.PaymentId, review.Decision);
                await workflows.RaiseApprovalAsync(record.PaymentId, new ApprovalDecision(review.Decision == PaymentReview.Approved, review.DecidedBy), cancellationToken);
                return report with { Redelivered = report.Redelivered + 1 };
            case { Ended: true }:
            case { Ended: false } when runningFor > policy.MaxRunning:
                logger.LogWarning("Sweeper: payment {PaymentId}'s saga ended without an outcome or ran too long ({Step}); running it again",
                    record.PaymentId, state.Step);
                await workflows.RestartAsync(input, cancellationToken);
                return report with { Restarted = report.Restarted + 1 };
            case { Ended: false, LastProgressAt: { } progressed } when state.Step != PaymentStep.AwaitingApproval && now - progressed > SweepPolicy.StallBound:
                if (report.StallRestarts >= SweepPolicy.MaxStallRestartsPerPass)
                {
                    return report with { StallsDeferred = report.StallsDeferred + 1 };
                }

                logger.LogWarning("Sweeper: payment {PaymentId}'s saga stopped progressing ({Step}, last at {Progressed:O}); running it again",
                    record.PaymentId, state.Step, progressed);
                await workflows.RestartAsync(input, cancellationToken);
                return report with { Restarted = report.Restarted + 1, StallRestarts = report.StallRestarts + 1 };
            default:
                return report;
        }
    }

    /// <summary>A run this region started in an earlier epoch of its own, before the other region held the payment: it
    /// knows nothing of what was decided there (a review, a settlement), and left to itself it decided again — a wait
    /// for a reviewer who had approved in the other region ended failed at its deadline after the money moved, and an
    /// outcome fenced at the switchover was recorded over the payment's later life. Run again, the saga reads the record
    /// and asks the ledger first (ResumedPaymentWorkflow). A run that ended then is run again too: its output (its
    /// record write fenced off there) is not what happened since.</summary>
    private async Task<SweepReport> RunAgainFromBeforeTheTakeoverAsync(
        PaymentRecord record, PaymentWorkflowState state, PaymentInput input, SweepReport report, CancellationToken cancellationToken)
    {
        // An ended run wrote its outcome before it ended, unless the fence refused it: the record read now, not the
        // page's (minutes old by the end of a page), tells which — a run of this epoch that ended during the walk, its
        // outcome recorded, is not run again (deciding again could move money under a record that says failed).
        if (state.Ended && await records.GetAsync(record.PaymentId, cancellationToken) is { Record.IsTerminal: true })
        {
            return report;
        }

        logger.LogWarning("Sweeper: payment {PaymentId}'s saga run dates from before this region took over ({Step}); running it again",
            record.PaymentId, state.Step);
        await workflows.RestartAsync(input, cancellationToken);
        return report with { Restarted = report.Restarted + 1 };
    }

    /// <summary>How long a saga run again may still wait for a reviewer: the payment's deadline runs from its
    /// creation, not from the new run. With the whole deadline again, a payment resumed after it had waited a while
    /// outlived <see cref="SweepPolicy.MaxRunning"/> and was restarted at every pass, never ending; past the deadline the
    /// run waits <see cref="MinApprovalWait"/> and fails as <c>approval-deadline-passed</c>.</summary>
    public TimeSpan RemainingApprovalTime(PaymentRecord record, DateTimeOffset now)
    {
        var remaining = record.CreatedAt + approvalTimeout - now;
        return remaining < MinApprovalWait ? MinApprovalWait : remaining > approvalTimeout ? approvalTimeout : remaining;
    }

    /// <summary>The shortest wait a run again is given (a zero timeout is not a timer every workflow runtime starts).</summary>
    public static readonly TimeSpan MinApprovalWait = TimeSpan.FromSeconds(1);

    /// <summary>Whether takeover epoch <paramref name="epoch"/> is older than <paramref name="than"/> (false if either is
    /// not a number: an unknown flag is served as before).</summary>
    private static bool OlderThan(string epoch, string? than) =>
        long.TryParse(epoch, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var asked)
        && long.TryParse(than, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var known)
        && asked < known;

    private async Task<(SweeperState State, string? Takeover)> ReadStateAsync(CancellationToken cancellationToken)
    {
        var request = new TxnRequest();
        request.Success.Add(EtcdBytes.Get(cursorKey));
        request.Success.Add(EtcdBytes.Get(takeoverKey));
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
        var stored = response.Responses[0].ResponseRange.Kvs.FirstOrDefault()?.Value;
        var state = stored is null || stored.IsEmpty ? new SweeperState(null, null) : JsonSerializer.Deserialize<SweeperState>(stored.Span, Json)!;
        return (state, response.Responses[1].ResponseRange.Kvs.FirstOrDefault()?.Value.ToStringUtf8());
    }

    /// <summary>Moves the cursor and, after a full cycle in takeover mode, clears the flag (only if it still holds the
    /// epoch this cycle served: a newer takeover starts a cycle of its own). Fenced: a sweeper that lost its lock
    /// writes nothing.</summary>
    private async Task WriteStateAsync(EtcdFencedLock held, SweeperState state, string? clearTakeover, CancellationToken cancellationToken)
    {
        var request = new TxnRequest();
        held.AddFence(request);
        request.Success.Add(EtcdBytes.Put(cursorKey, ByteString.CopyFrom(JsonSerializer.SerializeToUtf8Bytes(state, Json))));
        await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
        if (clearTakeover is not null)
        {
            var clear = new TxnRequest();
            clear.Compare.Add(new Compare
            {
                Key = EtcdBytes.Key(takeoverKey), Target = Compare.Types.CompareTarget.Value, Result = Compare.Types.CompareResult.Equal,
                Value = ByteString.CopyFromUtf8(clearTakeover),
            });
            held.AddFence(clear);
            clear.Success.Add(EtcdBytes.Delete(takeoverKey));
            await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(clear, cancellationToken: token), cancellationToken);
            logger.LogWarning("Sweeper: takeover sweep for epoch {Epoch} completed a full cycle", clearTakeover);
        }
    }
}

using Payments.Ledger.Contracts;

namespace Payments.Ledger.Core.Transfers;

/// <summary>Group commit: transfers — single ones, and small linked batches such as the saga's hold-and-settle — that
/// arrive while earlier ones are being written are coalesced into one etcd transaction, so a busy ledger pays one Raft
/// round for many instead of one each. Each keeps its own outcome (a linked batch stays all or nothing): one refused
/// (insufficient funds, a reused id) is answered alone and the rest go again without it; anything else that fails a
/// group (a batch-level error, etcd unavailable) sends each on its own, so none is failed by another's problem.</summary>
/// <remarks>No timer and no background loop: a unit that finds fewer than <see cref="MaxGroupsInFlight"/> groups
/// being written starts a writer, which takes what is queued (up to <see cref="MaxGroup"/> units and
/// <see cref="MaxGroupTransfers"/> transfers) and goes on while the queue holds anything. Under light load a unit is
/// written at once, alone; under load the queue fills while the writers wait on etcd, and the window a unit waits for
/// company is the time of one etcd transaction. Atomicity is unchanged: a group is one transaction that compares the
/// revision of every key it writes, like any batch (<see cref="TransferApplier"/>); its rules are evaluated in order,
/// as if its units had come one by one.</remarks>
internal sealed class GroupCommit(TransferApplier applier, TimeProvider time)
{
    /// <summary>Units in one transaction at most.</summary>
    public const int MaxGroup = 16;

    /// <summary>Transfers in one transaction at most: each writes at most 5 keys, so a full group stays within etcd's
    /// 128 operations per transaction; a linked batch longer than this is written alone.</summary>
    public const int MaxGroupTransfers = TransferApplier.MaxBatchTransfers;

    /// <summary>Groups being written at once: the ledger's concurrency towards etcd. Two, not more: etcd's cost of a
    /// transaction is mostly per key, and what grouping saves is the per-transaction part, so the fewer and fuller the
    /// groups the better, while a second writer keeps etcd busy during the first one's round trip. Measured with the
    /// ledger benchmark at 32 workers (docs/benchmarks.md): 4 writers made groups of 5.9 and 0.70–1.02× the raw
    /// transaction rate; 2 make groups of 10 and 1.14–1.38×.</summary>
    public const int MaxGroupsInFlight = 2;

    /// <summary>Units queued at most; past it a unit is refused unapplied (503: the caller retries with the same ids).
    /// Written alone instead, as it once was, every unit past the bound went to etcd at once, unbounded, exactly when
    /// etcd was what held the queue up.</summary>
    public const int MaxQueued = 4_096;

    /// <summary>How long a unit may wait in the queue before the writer answers it unapplied instead of writing it: the
    /// callers' own timeout (the API's and the orchestrator's ledger calls, 30 s), after which nobody awaits the answer
    /// and the caller's retry (same ids) is queued anew. Without it, after an etcd outage the writers spent as long again
    /// writing for callers long gone, ahead of the ones waiting.</summary>
    public static readonly TimeSpan MaxQueueWait = TimeSpan.FromSeconds(30);

    private readonly Queue<Pending> queue = new();
    private readonly Lock gate = new();
    private int writers;

    /// <summary>Applies one transfer, in a group with whatever else is queued; its own outcome.</summary>
    public async Task<TransferOutcome> TransferAsync(TransferRequest request, CancellationToken cancellationToken) =>
        (await ApplyAsync([request], cancellationToken)).Transfers[0];

    /// <summary>Applies a linked batch (all or nothing, in order), in a group with whatever else is queued; its own
    /// outcome, as <see cref="TransferApplier.ApplyAsync"/> would give it alone.</summary>
    public async Task<BatchOutcome> ApplyAsync(IReadOnlyList<TransferRequest> unit, CancellationToken cancellationToken)
    {
        if (unit.Count is 0 or > MaxGroupTransfers)
        {
            return await applier.ApplyAsync(unit, fence: null, cancellationToken); // a batch too long to share a transaction
        }

        var pending = new Pending(unit, new TaskCompletionSource<BatchOutcome>(TaskCreationOptions.RunContinuationsAsynchronously))
        {
            Caller = cancellationToken,
            EnqueuedAt = time.GetTimestamp(),
        };
        var startWriter = false;
        lock (gate)
        {
            if (queue.Count >= MaxQueued)
            {
                LedgerMetrics.QueueRefusals.Add(1);
                throw new LedgerUnavailableException(
                    $"The ledger has {MaxQueued} transfers waiting for etcd; nothing was applied. Retry with the same transfer ids.");
            }

            queue.Enqueue(pending);
            startWriter = writers < MaxGroupsInFlight;
            writers += startWriter ? 1 : 0;
        }

        if (startWriter)
        {
            _ = Task.Run(WriteWhileQueuedAsync, CancellationToken.None);
        }

        // A caller that gives up (its HTTP request ended) before the writer takes its unit leaves it unwritten; one
        // taken is finished whatever becomes of the request. Either way the caller's retry (same ids) is exact.
        return await pending.Outcome.Task.WaitAsync(cancellationToken);
    }

    private async Task WriteWhileQueuedAsync()
    {
        while (true)
        {
            var group = new List<Pending>();
            lock (gate)
            {
                if (queue.Count == 0)
                {
                    writers--;
                    return;
                }

                var transfers = 0;
                while (group.Count < MaxGroup && queue.TryPeek(out var next) && transfers + next.Unit.Count <= MaxGroupTransfers)
                {
                    queue.Dequeue();
                    if (!Abandoned(next))
                    {
                        group.Add(next);
                        transfers += next.Unit.Count;
                    }
                }
            }

            if (group.Count == 0)
            {
                continue; // everything taken had been given up: look again
            }

            LedgerMetrics.GroupSize.Record(group.Count);
            await WriteAsync(group);
        }
    }

    /// <summary>Writes a group; the refused leave it with their own answer and the rest go again (at most
    /// <see cref="MaxGroup"/> rounds: each round answers at least one unit, or writes the accepted ones alone so that
    /// the refusals it put off are answered after). Every unit is answered, whichever way the group ends.</summary>
    private async Task WriteAsync(List<Pending> group)
    {
        var deferred = new List<Pending>();
        for (var round = 0; round < MaxGroup && (group.Count > 0 || deferred.Count > 0); round++)
        {
            if (group.Count == 0)
            {
                // What was accepted is written (or answered): the refusals put off are evaluated again on that.
                (group, deferred) = (deferred, []);
            }

            BatchOutcome outcome;
            try
            {
                outcome = await applier.ApplyAsync(group.SelectMany(pending => pending.Unit).ToArray(), fence: null, CancellationToken.None);
            }
            catch (Exception exception) when (group.Count == 1)
            {
                group[0].Outcome.TrySetException(exception);
                await EachAloneAsync(deferred); // the refusals put off still get their answers
                return;
            }
            catch (Exception)
            {
                await EachAloneAsync([.. group, .. deferred]);
                return;
            }

            if (outcome.BatchError is not null || outcome.Transfers.Count != group.Sum(pending => pending.Unit.Count))
            {
                await EachAloneAsync([.. group, .. deferred]); // e.g. the same transfer id twice in the group (a retry racing its first try)
                return;
            }

            group = Answer(group, outcome, deferred);
        }

        await EachAloneAsync([.. group, .. deferred]);
    }

    /// <summary>Answers the units the group's outcome decides, and returns those to write again (the accepted ones);
    /// refusals that cannot be answered yet go to <paramref name="deferred"/>, evaluated again once those are written.</summary>
    /// <remarks>Applied: every unit. Refused: a unit with a refusal of its own, unless a unit before it planned changes
    /// that will not be written — an accepted unit (the group is not written: it goes again), a refused linked batch
    /// (refused at its credit, its hold had been evaluated) or a payout refused once the whole group was evaluated (its
    /// hold not posted: RequirePostedFunding). A refusal after one of those was evaluated on changes that never happen
    /// (a hold declined for funds only an earlier hold of the group used, a void answered "already posted" by a
    /// settlement that then failed): it is put off until the accepted units are written, then evaluated on that. A
    /// refused single transfer plans nothing (the rules refuse before they put anything). Each round answers a unit:
    /// the first refusal, or everything when nothing is refused.</remarks>
    internal static List<Pending> Answer(List<Pending> group, BatchOutcome outcome, List<Pending> deferred)
    {
        var again = new List<Pending>();
        var offset = 0;
        var polluted = false;
        foreach (var pending in group)
        {
            var slice = outcome.Transfers.Skip(offset).Take(pending.Unit.Count).ToArray();
            offset += pending.Unit.Count;
            var ownRefusal = slice.Any(transfer => transfer is TransferOutcome.Failed { Error.Code: not LedgerError.LinkedTransferFailed });
            if (slice.All(transfer => transfer.IsApplied) || (ownRefusal && !polluted))
            {
                pending.Outcome.TrySetResult(Own(slice));
                polluted |= ownRefusal && (pending.Unit.Count > 1 || pending.Unit.Any(transfer => transfer is TransferRequest.Single { FundedByHold: not null }));
            }
            else if (ownRefusal)
            {
                deferred.Add(pending);
            }
            else
            {
                again.Add(pending);
                polluted = true;
            }
        }

        return again;
    }

    /// <summary>A unit's outcome as if alone: its linked transfers name its own refused transfer, never another
    /// caller's that shared the group.</summary>
    private static BatchOutcome Own(TransferOutcome[] slice)
    {
        if (slice.OfType<TransferOutcome.Failed>().FirstOrDefault(failed => failed.Error.Code != LedgerError.LinkedTransferFailed) is not { } first)
        {
            return new BatchOutcome(slice);
        }

        var linked = new LedgerError(LedgerError.LinkedTransferFailed, $"Not applied: transfer {first.Id} in the same batch failed ({first.Error.Code}).");
        return new BatchOutcome(slice.Select(transfer => transfer is TransferOutcome.Failed { Error.Code: LedgerError.LinkedTransferFailed }
            ? new TransferOutcome.Failed(transfer.Id, linked)
            : transfer).ToArray());
    }

    private async Task EachAloneAsync(List<Pending> group) =>
        await Task.WhenAll(group.Select(async pending =>
        {
            try
            {
                pending.Outcome.TrySetResult(await applier.ApplyAsync(pending.Unit, fence: null, CancellationToken.None));
            }
            catch (Exception exception)
            {
                pending.Outcome.TrySetException(exception);
            }
        }));

    /// <summary>True (and the unit answered unapplied) when nobody awaits it any more, or it waited past
    /// <see cref="MaxQueueWait"/>.</summary>
    private bool Abandoned(Pending pending)
    {
        if (pending.Caller.IsCancellationRequested)
        {
            LedgerMetrics.QueueAbandoned.Add(1);
            pending.Outcome.TrySetCanceled(pending.Caller);
            return true;
        }

        if (time.GetElapsedTime(pending.EnqueuedAt) > MaxQueueWait)
        {
            LedgerMetrics.QueueAbandoned.Add(1);
            pending.Outcome.TrySetException(new LedgerUnavailableException(
                $"The transfer waited over {MaxQueueWait.TotalSeconds:0} s for etcd; nothing was applied. Retry with the same transfer ids."));
            return true;
        }

        return false;
    }

    internal sealed record Pending(IReadOnlyList<TransferRequest> Unit, TaskCompletionSource<BatchOutcome> Outcome)
    {
        /// <summary>The request's token: a unit whose caller gave up before a writer took it is not written.</summary>
        public CancellationToken Caller { get; init; }

        /// <summary>When it was queued (<see cref="TimeProvider.GetTimestamp"/>).</summary>
        public long EnqueuedAt { get; init; }
    }
}

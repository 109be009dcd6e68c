using Payments.Ledger.Contracts;

namespace Payments.Ledger.Core.Transfers;

/// <summary>Group commit: single transfers that arrive while earlier ones are being written are coalesced into one etcd
/// transaction, so a busy ledger pays one Raft round for many transfers instead of one each. Each transfer keeps its
/// own outcome: one refused (insufficient funds, a reused id) is answered alone and the rest go again without it;
/// anything else that fails a group (a batch-level error, etcd unavailable) sends each transfer on its own, so no
/// transfer is failed by another's problem.</summary>
/// <remarks>No timer and no background loop: a transfer that finds fewer than <see cref="MaxGroupsInFlight"/> groups
/// being written starts a writer, which takes what is queued (up to <see cref="MaxGroup"/>) and goes on while the queue
/// holds anything. Under light load a transfer is written at once, alone; under load the queue fills while the writers
/// wait on etcd, and the window a transfer waits for company is the time of one etcd transaction. Atomicity is
/// unchanged: a group is one transaction that compares the revision of every key it writes, like any batch
/// (<see cref="TransferApplier"/>); a group's rules are evaluated in order, as if its transfers had come one by one.</remarks>
internal sealed class GroupCommit(TransferApplier applier)
{
    /// <summary>Transfers in one transaction at most: each writes at most 5 keys, so a full group stays well within
    /// etcd's 128 operations per transaction (and under <see cref="TransferApplier.MaxBatchTransfers"/>).</summary>
    public const int MaxGroup = 16;

    /// <summary>Groups being written at once: the ledger's concurrency towards etcd. Two, not more: etcd's cost of a
    /// transaction is mostly per key, and what grouping saves is the per-transaction part, so the fewer and fuller the
    /// groups the better, while a second writer keeps etcd busy during the first one's round trip. Measured with the
    /// ledger benchmark at 32 workers (docs/benchmarks.md): 4 writers made groups of 5.9 and 0.70–1.02× the raw
    /// transaction rate; 2 make groups of 10 and 1.14–1.38×.</summary>
    public const int MaxGroupsInFlight = 2;

    /// <summary>Transfers queued at most; past it a transfer is written alone, outside any group.</summary>
    public const int MaxQueued = 4_096;

    private readonly Queue<Pending> queue = new();
    private readonly Lock gate = new();
    private int writers;

    /// <summary>Applies one transfer, in a group with whatever else is queued; its own outcome.</summary>
    public async Task<TransferOutcome> TransferAsync(TransferRequest request, CancellationToken cancellationToken)
    {
        Pending? pending = new(request, new TaskCompletionSource<TransferOutcome>(TaskCreationOptions.RunContinuationsAsynchronously));
        var startWriter = false;
        lock (gate)
        {
            if (queue.Count >= MaxQueued)
            {
                pending = null;
            }
            else
            {
                queue.Enqueue(pending);
                startWriter = writers < MaxGroupsInFlight;
                writers += startWriter ? 1 : 0;
            }
        }

        if (pending is null)
        {
            return (await applier.ApplyAsync([request], fence: null, cancellationToken)).Transfers[0];
        }

        if (startWriter)
        {
            _ = Task.Run(WriteWhileQueuedAsync, CancellationToken.None);
        }

        // The writer finishes the transfer whatever becomes of this request: a caller that gives up (its HTTP request
        // ended) retries with the same id, which replays.
        return await pending.Outcome.Task.WaitAsync(cancellationToken);
    }

    private async Task WriteWhileQueuedAsync()
    {
        while (true)
        {
            List<Pending> group;
            lock (gate)
            {
                if (queue.Count == 0)
                {
                    writers--;
                    return;
                }

                group = new List<Pending>(Math.Min(queue.Count, MaxGroup));
                while (group.Count < MaxGroup && queue.TryDequeue(out var next))
                {
                    group.Add(next);
                }
            }

            LedgerMetrics.GroupSize.Record(group.Count);
            await WriteAsync(group);
        }
    }

    /// <summary>Writes a group; the refused leave it with their own answer and the rest go again (at most
    /// <see cref="MaxGroup"/> rounds: each round answers at least one).</summary>
    private async Task WriteAsync(List<Pending> group)
    {
        for (var round = 0; round < MaxGroup && group.Count > 0; round++)
        {
            BatchOutcome outcome;
            try
            {
                outcome = await applier.ApplyAsync(group.Select(pending => pending.Request).ToArray(), fence: null, CancellationToken.None);
            }
            catch (Exception exception) when (group.Count == 1)
            {
                group[0].Outcome.TrySetException(exception);
                return;
            }
            catch (Exception)
            {
                await EachAloneAsync(group);
                return;
            }

            if (outcome.BatchError is not null || outcome.Transfers.Count != group.Count)
            {
                await EachAloneAsync(group); // e.g. the same transfer id twice in the group (a retry racing its first try)
                return;
            }

            var again = new List<Pending>();
            for (var index = 0; index < group.Count; index++)
            {
                if (outcome.Transfers[index] is TransferOutcome.Failed { Error.Code: LedgerError.LinkedTransferFailed })
                {
                    again.Add(group[index]);
                }
                else
                {
                    group[index].Outcome.TrySetResult(outcome.Transfers[index]);
                }
            }

            group = again;
        }

        await EachAloneAsync(group);
    }

    private async Task EachAloneAsync(List<Pending> group) =>
        await Task.WhenAll(group.Select(async pending =>
        {
            try
            {
                pending.Outcome.TrySetResult((await applier.ApplyAsync([pending.Request], fence: null, CancellationToken.None)).Transfers[0]);
            }
            catch (Exception exception)
            {
                pending.Outcome.TrySetException(exception);
            }
        }));

    private sealed record Pending(TransferRequest Request, TaskCompletionSource<TransferOutcome> Outcome);
}

using System.Diagnostics;
using Etcdserverpb;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Payments.Domain;
using Payments.Etcd;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core.Retention;
using Payments.Ledger.Core.Rules;
using Payments.Ledger.Core.Storage;
using Payments.Telemetry;

namespace Payments.Ledger.Core.Transfers;

/// <summary>Applies a batch of transfers as one etcd transaction: read what the rules need, evaluate them in memory
/// (<see cref="TransferRules"/>), then write every changed key with a compare on the revision it was read at.
/// Conflicts and unavailable members are retried within <see cref="LedgerStore"/>'s bounds.</summary>
internal sealed partial class TransferApplier(
    LedgerStore store, TimeProvider time, JournalRetentionOptions retention, ILogger logger, Func<IWriteFence?>? regionFence)
{
    /// <summary>Most transfers in one linked batch: at most 5 keys each (2 accounts, transfer, hold, expiry index) and
    /// one age-index key per transaction, so a full batch stays within etcd's 128 operations per transaction.</summary>
    public const int MaxBatchTransfers = 25;

    private const int MaxReadRounds = 4;
    private readonly RecordCache accountCache = new();
    private readonly KeyTurns turns = new();

    private LedgerKeys Keys => store.Keys;

    public async Task<BatchOutcome> ApplyAsync(IReadOnlyList<TransferRequest> batch, EtcdFencedLock? fence, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (Invalid(batch) is { } invalid)
        {
            return invalid;
        }

        using var span = PaymentsTelemetry.Source.StartActivity("ledger.apply");
        span?.SetTag("ledger.transfers", batch.Count);
        span?.SetTag("ledger.first_transfer_id", batch[0].Id.Value);
        var started = Stopwatch.StartNew();
        try
        {
            var outcome = await ApplyWithRetriesAsync(batch, fence, started, cancellationToken);
            Record(span, started, OutcomeName(outcome));
            return outcome;
        }
        catch (LedgerUnavailableException)
        {
            Record(span, started, "unavailable");
            throw;
        }
    }

    private static string OutcomeName(BatchOutcome outcome) =>
        !outcome.Succeeded ? outcome.Error!.Code
        : outcome.Transfers.All(transfer => transfer is TransferOutcome.Applied { Replayed: true }) ? "replayed"
        : "applied";

    private static void Record(Activity? span, Stopwatch started, string outcome)
    {
        span?.SetTag("ledger.outcome", outcome);
        LedgerMetrics.Operations.Add(1, new KeyValuePair<string, object?>("outcome", outcome));
        LedgerMetrics.Duration.Record(started.Elapsed.TotalMilliseconds, new KeyValuePair<string, object?>("outcome", outcome));
    }

    private async Task<BatchOutcome> ApplyWithRetriesAsync(
        IReadOnlyList<TransferRequest> batch, EtcdFencedLock? fence, Stopwatch started, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(LedgerStore.OperationTimeout);
        var set = new WorkingSet();
        var lastProblem = "none";
        for (var attempt = 1; attempt <= LedgerStore.MaxAttempts; attempt++)
        {
            try
            {
                if (await TryOnceAsync(batch, set, fence, optimistic: attempt == 1, timeout.Token) is { } outcome)
                {
                    return outcome;
                }

                lastProblem = "a concurrent write changed a key this transaction read";
                LogConflict(logger, attempt);
            }
            catch (RpcException exception) when (LedgerStore.IsTransient(exception) && !cancellationToken.IsCancellationRequested)
            {
                // Outcome unknown: the next attempt re-reads, and a transfer that did commit is then found and replayed.
                lastProblem = $"etcd {exception.StatusCode}: {exception.Status.Detail}";
                LogUnavailable(logger, attempt, exception.StatusCode);
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                break;
            }

            set.Reset();
            await LedgerStore.BackoffAsync(attempt, timeout.Token); // ends early, without throwing, when the timeout fires
            if (timeout.IsCancellationRequested)
            {
                cancellationToken.ThrowIfCancellationRequested();
                break; // the operation's time is spent, in a call or in the back-off: unavailable, as below
            }
        }

        throw new LedgerUnavailableException(
            $"The ledger could not apply {batch.Count} transfer(s) within {LedgerStore.MaxAttempts} attempts or {LedgerStore.OperationTimeout.TotalSeconds} s "
            + $"({started.Elapsed.TotalSeconds:F1} s spent; last: {lastProblem}). Nothing was applied twice; retry with the same ids.");
    }

    /// <summary>One read-evaluate-write round: the outcome, or null when the write lost a compare (retry).</summary>
    /// <param name="optimistic">First round: cached accounts, new transfer ids assumed absent, nearest-member reads;
    /// after a conflict everything is read again through the leader.</param>
    private async Task<BatchOutcome?> TryOnceAsync(
        IReadOnlyList<TransferRequest> batch, WorkingSet set, EtcdFencedLock? fence, bool optimistic, CancellationToken cancellationToken)
    {
        KeyTurns.Turn? turn = null;
        try
        {
            for (var round = 1; ; round++)
            {
                var decision = await EvaluateAsync(batch, set, optimistic, cancellationToken);
                if (decision.Outcome is not null && optimistic)
                {
                    // Hints may only speed up a write that etcd then verifies; a refusal (insufficient funds, a retried
                    // transfer that already drained the account…) is never reported on hints alone.
                    set.Reset();
                    decision = await EvaluateAsync(batch, set, optimistic: false, cancellationToken);
                }

                if (decision.Outcome is { } decided)
                {
                    // A refusal rests on reads made in rounds (a transfer's record first, then the accounts it names),
                    // so at different revisions: a retry racing its first attempt once read its record absent and then
                    // the account its first attempt had just drained, and was refused although it had been applied. It
                    // is reported only once etcd confirms every key read is unchanged (a read-only transaction: no Raft
                    // round), i.e. the reads were one snapshot; else everything is read again.
                    return decided.Succeeded || decided.BatchError is not null || await ReadsStillCurrentAsync(set, cancellationToken) ? decided : null;
                }

                var accounts = set.Writes.Keys.Where(Keys.IsAccountKey).ToArray();
                if (turn is null || !turn.Covers(accounts))
                {
                    turn?.Dispose();
                    turn = round <= KeyTurns.MaxTurns ? turns.Take(accounts) : null;
                    if (turn is { Ready.IsCompleted: false })
                    {
                        await turn.Ready.WaitAsync(cancellationToken); // the writes ahead end within etcd's deadline
                        set.Reset();
                        continue; // evaluated again on what they wrote
                    }
                }

                return await WriteOnceAsync(set, decision.Evaluations!, fence, cancellationToken);
            }
        }
        finally
        {
            turn?.Dispose();
        }
    }

    /// <summary>The write of an evaluated batch: its outcome, or null when it lost a compare.</summary>
    private async Task<BatchOutcome?> WriteOnceAsync(WorkingSet set, Evaluated[] evaluations, EtcdFencedLock? fence, CancellationToken cancellationToken)
    {
        var region = regionFence?.Invoke();
        var (request, response) = await WriteAsync(set, fence, region, cancellationToken);
        if (response.Succeeded)
        {
            CommitCheck.AssertHolds(set);
            RememberWrites(request, response.Header.Revision);
            return Committed(evaluations, response.Header.Revision);
        }

        ForgetAccounts(set);
        LedgerMetrics.Conflicts.Add(1);
        RegionFences.ThrowIfFencedOff(region, response);
        if (fence is not null && fence.WasFencedOff(response))
        {
            throw new FencedOffException($"Lock {fence.Key} with fencing token {fence.FencingToken} is no longer held; the write was rejected.");
        }

        return null;
    }

    /// <summary>Whether every key the evaluation read is still at the revision it was read at (more keys than etcd
    /// compares in one transaction — only the largest batches — are taken as they are).</summary>
    private async Task<bool> ReadsStillCurrentAsync(WorkingSet set, CancellationToken cancellationToken)
    {
        if (set.Reads.Count > LedgerStore.MaxTxnOps)
        {
            return true;
        }

        var request = new TxnRequest();
        foreach (var (key, value) in set.Reads)
        {
            request.Compare.Add(EtcdBytes.ModRevisionIs(key, value.ModRevision));
        }

        return (await store.TxnAsync(request, cancellationToken)).Succeeded;
    }

    private static BatchOutcome? Invalid(IReadOnlyList<TransferRequest> batch)
    {
        string? code = batch.Count switch
        {
            0 => LedgerError.BatchEmpty,
            > MaxBatchTransfers => LedgerError.BatchTooLarge,
            _ when batch.Select(transfer => transfer.Id).Distinct().Count() != batch.Count => LedgerError.BatchDuplicateId,
            _ => null,
        };
        if (code is null)
        {
            return null;
        }

        var error = new LedgerError(code, code switch
        {
            LedgerError.BatchEmpty => "A batch needs at least one transfer.",
            // "has more", not its count: the ledger service reads a batch only that far (one over the bound).
            LedgerError.BatchTooLarge => $"A batch holds at most {MaxBatchTransfers} transfers; this one has more.",
            _ => "A batch must not contain the same transfer id twice.",
        });
        return FailedAll(batch, error);
    }

    private static BatchOutcome FailedAll(IReadOnlyList<TransferRequest> batch, LedgerError error) =>
        new(batch.Select(transfer => (TransferOutcome)new TransferOutcome.Failed(transfer.Id, error)).ToArray(), error);

    /// <summary>Reads what the batch needs (in rounds: a post's accounts are known only once its pending transfer is
    /// read) and evaluates it. Returns either a final outcome (a rejection, or nothing new to write) or the plan.</summary>
    private async Task<(BatchOutcome? Outcome, Evaluated[]? Evaluations)> EvaluateAsync(
        IReadOnlyList<TransferRequest> batch, WorkingSet set, bool optimistic, CancellationToken cancellationToken)
    {
        for (var round = 1; round <= MaxReadRounds; round++)
        {
            set.StartEvaluation();
            var now = time.GetUtcNow();
            var rules = new TransferRules(Keys, set, now, retention);
            var evaluations = batch.Select((transfer, index) => rules.Evaluate(transfer, index)).ToArray();
            if (set.Missing.Count == 0)
            {
                rules.RequirePostedFunding(batch, evaluations);
            }

            var created = evaluations.OfType<Evaluated.New>().Select(evaluation => evaluation.Record.Id).ToArray();
            if (created.Length > 0 && set.Missing.Count == 0)
            {
                // Written blind: unique per transaction (its time and its first new transfer, which exists only once).
                set.Put(Keys.Age(now, created[0]), new AgeIndexRecord(created));
            }

            if (set.Missing.Count > 0)
            {
                var toRead = optimistic ? FillFromHints(batch, set) : [.. set.Missing];
                if (toRead.Count > 0)
                {
                    await ReadIntoAsync(set, toRead, serializable: optimistic, cancellationToken);
                }

                continue;
            }

            return evaluations.Any(evaluation => evaluation is Evaluated.Rejected) ? (Rejected(batch, evaluations), null)
                : set.Writes.Count == 0 ? (Committed(evaluations, revision: 0), null)
                : set.Writes.Count > LedgerStore.MaxTxnOps ? (FailedAll(batch, new LedgerError(
                    LedgerError.BatchTooLarge, $"The batch needs {set.Writes.Count} writes; etcd allows {LedgerStore.MaxTxnOps}.")), null)
                : (null, evaluations);
        }

        throw new InvalidOperationException($"Evaluation still needed keys after {MaxReadRounds} read rounds.");
    }

    /// <summary>A refused batch: each refusal with its reason, each transfer applied by an earlier call as applied
    /// (its original entry, replayed: ILedger's contract; it said "Not applied" of a hold that was in the ledger — a
    /// ledger review), and the rest linked to the first refusal.</summary>
    private static BatchOutcome Rejected(IReadOnlyList<TransferRequest> batch, Evaluated[] evaluations)
    {
        var first = evaluations.OfType<Evaluated.Rejected>().First();
        var firstId = batch[Array.IndexOf(evaluations, first)].Id;
        return new BatchOutcome(batch.Select((transfer, index) => evaluations[index] switch
            {
                Evaluated.Rejected rejected => new TransferOutcome.Failed(transfer.Id, rejected.Error),
                Evaluated.Replay replay => new TransferOutcome.Applied(
                    TransferId.Parse(replay.Record.Id), JournalReader.ToEntry(replay.Record, replay.ModRevision), Replayed: true),
                _ => (TransferOutcome)new TransferOutcome.Failed(
                    transfer.Id, new LedgerError(LedgerError.LinkedTransferFailed, $"Not applied: transfer {firstId} in the same batch failed ({first.Error.Code}).")),
            })
            .ToArray());
    }

    private static BatchOutcome Committed(Evaluated[] evaluations, long revision) =>
        new(evaluations.Select(evaluation => evaluation switch
        {
            Evaluated.New created => (TransferOutcome)new TransferOutcome.Applied(
                TransferId.Parse(created.Record.Id), JournalReader.ToEntry(created.Record, revision), Replayed: false),
            Evaluated.Replay replay => new TransferOutcome.Applied(
                TransferId.Parse(replay.Record.Id), JournalReader.ToEntry(replay.Record, replay.ModRevision), Replayed: true),
            _ => throw new UnreachableException($"Cannot commit {evaluation}."),
        }).ToArray());

    private async Task<(TxnRequest Request, TxnResponse Response)> WriteAsync(
        WorkingSet set, EtcdFencedLock? fence, IWriteFence? region, CancellationToken cancellationToken)
    {
        var request = new TxnRequest();
        foreach (var (key, record) in set.Writes)
        {
            if (set.ReadRevision(key) is { } revision)
            {
                request.Compare.Add(EtcdBytes.ModRevisionIs(key, revision));
            }

            request.Success.Add(record is null ? EtcdBytes.Delete(key) : EtcdBytes.Put(key, LedgerJson.Encode(record)));
        }

        fence?.AddFence(request);
        region?.AddFence(request);
        return (request, await store.TxnAsync(request, cancellationToken));
    }

    /// <summary>Answers what it can from hints: accounts from the cache, and this batch's own transfer ids as absent
    /// (a transfer submitted is usually new; if it is not, the create-only compare fails and the retry reads it), and
    /// so the hold record of a pending transfer in the batch (created with its transfer; a post later in the same batch
    /// asks for it while the hold still waits for its accounts, and the compare on it catches one that exists).
    /// Returns the keys still to read.</summary>
    private List<string> FillFromHints(IReadOnlyList<TransferRequest> batch, WorkingSet set)
    {
        var ownTransferKeys = batch.Select(transfer => Keys.Transfer(transfer.Id))
            .Concat(batch.OfType<TransferRequest.Pending>().Select(pending => Keys.Hold(pending.Id)))
            .ToHashSet(StringComparer.Ordinal);
        var toRead = new List<string>();
        foreach (var key in set.Missing)
        {
            if (ownTransferKeys.Contains(key))
            {
                set.AddRead(key, StoredValue.Absent);
            }
            else if (Keys.IsAccountKey(key) && accountCache.TryGet(key, out var cached))
            {
                set.AddRead(key, cached);
            }
            else
            {
                toRead.Add(key);
            }
        }

        return toRead;
    }

    private void RememberWrites(TxnRequest request, long revision)
    {
        foreach (var put in request.Success.Select(op => op.RequestPut).Where(put => put is not null))
        {
            var key = put.Key.ToStringUtf8();
            if (Keys.IsAccountKey(key))
            {
                accountCache.Remember(key, new StoredValue(put.Value, revision));
            }
        }
    }

    private void ForgetAccounts(WorkingSet set)
    {
        foreach (var key in set.Writes.Keys.Where(Keys.IsAccountKey))
        {
            accountCache.Forget(key);
        }
    }

    private async Task ReadIntoAsync(WorkingSet set, IReadOnlyList<string> wanted, bool serializable, CancellationToken cancellationToken)
    {
        foreach (var (key, value) in await store.ReadManyAsync(wanted, serializable, cancellationToken))
        {
            set.AddRead(key, value);
            if (value.Exists && Keys.IsAccountKey(key))
            {
                accountCache.Remember(key, value);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Ledger transaction conflicted (attempt {Attempt}); re-reading")]
    private static partial void LogConflict(ILogger logger, int attempt);

    [LoggerMessage(Level = LogLevel.Information, Message = "etcd unavailable during a ledger write (attempt {Attempt}): {Status}")]
    private static partial void LogUnavailable(ILogger logger, int attempt, StatusCode status);
}

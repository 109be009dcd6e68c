using System.Diagnostics;
using Etcdserverpb;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Payments.Domain;
using Payments.Domain.Diagnostics;
using Payments.Etcd;
using Payments.Ledger.Core.Model;
using Payments.Ledger.Core.Storage;

namespace Payments.Ledger.Core;

/// <summary>The double-entry ledger on etcd.</summary>
/// <remarks>
/// Every mutation is one etcd transaction: it compares the mod revision of every key it writes with the revision it
/// read, and writes all of them at once (ARCHITECTURE §2.4). Reads go first to the nearest member (serializable,
/// maybe stale — the compare catches that) and, after a conflict, through the leader (linearizable). A transfer id's
/// record is created only if absent, in the same transaction as the balances it changes, so a retry after a timeout,
/// a crash or a lost response can never apply it twice.
/// </remarks>
public sealed class EtcdLedger : ILedger
{
    /// <summary>Most transfers in one linked batch: at most 5 keys each (2 accounts, transfer, hold, expiry index), so a
    /// full batch stays within etcd's 128 operations per transaction.</summary>
    public const int MaxBatchTransfers = 25;

    /// <summary>etcd's default <c>--max-txn-ops</c>; our clusters are started with it explicitly.</summary>
    public const int MaxTxnOps = 128;

    /// <summary>Conflicts or unavailable members before an operation gives up (it is safe to retry it later with the same ids).</summary>
    public const int MaxAttempts = 32;

    public static readonly TimeSpan OperationTimeout = TimeSpan.FromSeconds(20);
    private const int MaxReadRounds = 4;
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromMilliseconds(200);

    private readonly EtcdConnection etcd;
    private readonly LedgerKeys keys;
    private readonly TimeProvider time;
    private readonly ILogger logger;
    private readonly RecordCache accountCache = new();
    private readonly Func<IWriteFence?>? regionFence;

    /// <param name="prefix">The key prefix of this ledger's data, e.g. <c>/daprpayments/ledger/</c>.</param>
    /// <param name="regionFence">When set (a region of a two-region deployment), every mutation carries it into its
    /// own transaction: the region's epoch mirror must still hold its epoch, or nothing is written
    /// (<see cref="RegionNotWritableException"/>). Reads are not fenced.</param>
    public EtcdLedger(EtcdConnection etcd, string prefix, TimeProvider time, ILogger<EtcdLedger> logger, IWriteFence? regionFence = null)
        : this(etcd, prefix, time, logger, regionFence is null ? null : () => regionFence)
    {
    }

    /// <param name="regionFence">Asked once per write attempt for the region's current fence (it follows the epoch
    /// the region holds; see <see cref="RegionEpochWatcher"/>).</param>
    public EtcdLedger(EtcdConnection etcd, string prefix, TimeProvider time, ILogger<EtcdLedger> logger, Func<IWriteFence?>? regionFence)
    {
        this.etcd = etcd;
        keys = new LedgerKeys(prefix);
        this.time = time;
        this.logger = logger;
        this.regionFence = regionFence;
    }

    internal LedgerKeys Keys => keys;

    internal EtcdConnection Etcd => etcd;

    internal TimeProvider Time => time;

    public async Task<OpenAccountOutcome> OpenAccountAsync(
        AccountId id, Currency currency, long overdraftLimitMinor, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(id);
        ArgumentNullException.ThrowIfNull(currency);
        if (id.IsSystem || overdraftLimitMinor < 0)
        {
            return new OpenAccountOutcome.Failed(new LedgerError(
                LedgerError.InvalidAmount, id.IsSystem ? "System accounts cannot be opened." : "The overdraft limit must not be negative."));
        }

        var key = keys.Account(id);
        var record = new AccountRecord(id.Value, currency.Code, overdraftLimitMinor, Unlimited: false, Closed: false, 0, 0, 0);
        var request = new TxnRequest();
        request.Compare.Add(EtcdBytes.CreateRevisionIs(key, 0));
        request.Success.Add(EtcdBytes.Put(key, LedgerJson.Encode(record)));
        request.Failure.Add(EtcdBytes.Get(key));
        var region = regionFence?.Invoke();
        region?.AddFence(request);
        var response = await RetryingAsync(token => TxnAsync(request, token), cancellationToken);
        if (response.Succeeded)
        {
            return new OpenAccountOutcome.Opened(ToAccount(record, response.Header.Revision), Created: true);
        }

        ThrowIfRegionFencedOff(region, response);

        var kv = response.Responses[0].ResponseRange.Kvs[0];
        var existing = LedgerJson.DecodeAccount(kv.Value);
        return existing.Currency == record.Currency && existing.OverdraftLimitMinor == record.OverdraftLimitMinor
            ? new OpenAccountOutcome.Opened(ToAccount(existing, kv.ModRevision), Created: false)
            : new OpenAccountOutcome.Failed(new LedgerError(
                LedgerError.AccountExists, $"Account {id} exists with currency {existing.Currency} and overdraft limit {existing.OverdraftLimitMinor}."));
    }

    /// <summary>Closes an account with no balance and no holds; a closed account takes part in no further transfer.</summary>
    public async Task<CloseAccountOutcome> CloseAccountAsync(AccountId id, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(id);
        for (var attempt = 1; attempt <= MaxAttempts; attempt++)
        {
            var key = keys.Account(id);
            var current = await RetryingAsync(token => GetAsync(key, serializable: false, token), cancellationToken);
            if (!current.Exists || id.IsSystem)
            {
                return new CloseAccountOutcome.Failed(new LedgerError(LedgerError.AccountNotFound, $"No account {id}."));
            }

            var record = LedgerJson.DecodeAccount(current.Value!);
            if (record.Closed)
            {
                return new CloseAccountOutcome.Closed(ToAccount(record, current.ModRevision));
            }

            if (record.BalanceMinor != 0 || record.PendingDebitMinor != 0 || record.PendingCreditMinor != 0)
            {
                return new CloseAccountOutcome.Failed(new LedgerError(
                    LedgerError.AccountNotEmpty, $"Account {id} still has a balance of {record.BalanceMinor} or pending transfers."));
            }

            var closed = record with { Closed = true };
            var request = new TxnRequest();
            request.Compare.Add(EtcdBytes.ModRevisionIs(key, current.ModRevision));
            request.Success.Add(EtcdBytes.Put(key, LedgerJson.Encode(closed)));
            var region = regionFence?.Invoke();
            region?.AddFence(request);
            var response = await RetryingAsync(token => TxnAsync(request, token), cancellationToken);
            if (response.Succeeded)
            {
                return new CloseAccountOutcome.Closed(ToAccount(closed, response.Header.Revision));
            }

            ThrowIfRegionFencedOff(region, response);
        }

        throw new LedgerUnavailableException($"Closing {id} conflicted {MaxAttempts} times.");
    }

    /// <summary>The account, or null if there is none. System accounts sum their shards.</summary>
    public async Task<Account?> GetAccountAsync(AccountId id, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(id);
        if (!id.IsSystem)
        {
            var stored = await RetryingAsync(token => GetAsync(keys.Account(id), serializable: false, token), cancellationToken);
            return stored.Exists ? ToAccount(LedgerJson.DecodeAccount(stored.Value!), stored.ModRevision) : null;
        }

        var prefix = keys.SystemShardsPrefix(id);
        var range = await RetryingAsync(
            token => EtcdConnection.CallAsync(
                callToken => etcd.Kv.RangeAsync(
                    new RangeRequest { Key = EtcdBytes.Key(prefix), RangeEnd = EtcdBytes.PrefixEnd(prefix) }, cancellationToken: callToken),
                token),
            cancellationToken);
        var shards = range.Kvs.Select(kv => (Record: LedgerJson.DecodeAccount(kv.Value), kv.ModRevision)).ToArray();
        var currency = Currency.FromCode(TransferEvaluator.SystemCurrency(id));
        return new Account(
            id, currency, 0, false,
            shards.Sum(shard => shard.Record.BalanceMinor),
            shards.Sum(shard => shard.Record.PendingDebitMinor),
            shards.Sum(shard => shard.Record.PendingCreditMinor),
            shards.Length == 0 ? 0 : shards.Max(shard => shard.ModRevision));
    }

    public async Task<TransferOutcome> TransferAsync(TransferRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var outcome = await ApplyAsync([request], fence: null, cancellationToken);
        return outcome.Transfers[0];
    }

    /// <summary>Applies up to <see cref="MaxBatchTransfers"/> transfers all-or-nothing, in order, in one transaction.
    /// A transfer already applied earlier with the same fields counts as applied (its original entry is returned).</summary>
    public Task<BatchOutcome> ApplyBatchAsync(IReadOnlyList<TransferRequest> batch, CancellationToken cancellationToken) =>
        ApplyAsync(batch, fence: null, cancellationToken);

    /// <summary>Voids a pending transfer whose timeout has passed; only the sweep calls this, under its fenced lock.</summary>
    internal async Task<TransferOutcome> ExpireAsync(TransferId pendingId, EtcdFencedLock fence, CancellationToken cancellationToken)
    {
        var outcome = await ApplyAsync([new ExpirePendingRequest(pendingId.Derive("expire"), pendingId)], fence, cancellationToken);
        return outcome.Transfers[0];
    }

    private async Task<BatchOutcome> ApplyAsync(
        IReadOnlyList<TransferRequest> batch, EtcdFencedLock? fence, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (Invalid(batch) is { } invalid)
        {
            return invalid;
        }

        using var span = PaymentsDiagnostics.Source.StartActivity("ledger.apply");
        span?.SetTag("ledger.transfers", batch.Count);
        span?.SetTag("ledger.first_transfer_id", batch[0].Id.Value);
        var started = Stopwatch.StartNew();
        try
        {
            var outcome = await ApplyWithRetriesAsync(batch, fence, started, cancellationToken);
            Record(span, started, outcome.Succeeded ? (outcome.Transfers.All(t => t is TransferOutcome.Applied { Replayed: true }) ? "replayed" : "applied") : outcome.Error!.Code);
            return outcome;
        }
        catch (LedgerUnavailableException)
        {
            Record(span, started, "unavailable");
            throw;
        }
    }

    private static void Record(Activity? span, Stopwatch started, string outcome)
    {
        span?.SetTag("ledger.outcome", outcome);
        PaymentsDiagnostics.LedgerOperations.Add(1, new KeyValuePair<string, object?>("outcome", outcome));
        PaymentsDiagnostics.LedgerDuration.Record(started.Elapsed.TotalMilliseconds, new KeyValuePair<string, object?>("outcome", outcome));
    }

    private async Task<BatchOutcome> ApplyWithRetriesAsync(
        IReadOnlyList<TransferRequest> batch, EtcdFencedLock? fence, Stopwatch started, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(OperationTimeout);
        var set = new WorkingSet();
        var lastProblem = "none";
        for (var attempt = 1; attempt <= MaxAttempts; attempt++)
        {
            try
            {
                // First attempt: optimistic (cached accounts, new transfer ids assumed absent, nearest-member reads);
                // after a conflict everything is read again through the leader.
                var optimistic = attempt == 1;
                var decision = await EvaluateAsync(batch, set, optimistic, timeout.Token);
                if (decision.Outcome is not null && optimistic)
                {
                    // Hints may only speed up a write that etcd then verifies; a refusal (insufficient funds, a
                    // retried transfer that already drained the account…) is never reported on hints alone.
                    set.Reset();
                    decision = await EvaluateAsync(batch, set, optimistic: false, timeout.Token);
                }

                if (decision.Outcome is { } decided)
                {
                    return decided;
                }

                var region = regionFence?.Invoke();
                var (request, response) = await WriteAsync(set, fence, region, timeout.Token);
                if (response.Succeeded)
                {
                    RememberWrites(request, response.Header.Revision);
                    return Committed(decision.Evaluations!, response.Header.Revision);
                }

                ForgetAccounts(set);
                PaymentsDiagnostics.LedgerConflicts.Add(1);

                ThrowIfRegionFencedOff(region, response);
                if (fence is not null && fence.WasFencedOff(response))
                {
                    throw new FencedOffException($"Lock {fence.Key} with fencing token {fence.FencingToken} is no longer held; the write was rejected.");
                }

                lastProblem = "a concurrent write changed a key this transaction read";
                logger.LogDebug("Ledger transaction conflicted (attempt {Attempt}); re-reading", attempt);
            }
            catch (RpcException exception) when (IsTransient(exception) && !timeout.IsCancellationRequested)
            {
                // Outcome unknown: the next attempt re-reads, and a transfer that did commit is then found and replayed.
                lastProblem = $"etcd {exception.StatusCode}: {exception.Status.Detail}";
                logger.LogInformation("etcd unavailable during a ledger write (attempt {Attempt}): {Status}", attempt, exception.StatusCode);
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                break;
            }

            set.Reset();
            await BackoffAsync(attempt, timeout.Token);
        }

        throw new LedgerUnavailableException(
            $"The ledger could not apply {batch.Count} transfer(s) within {MaxAttempts} attempts or {OperationTimeout.TotalSeconds} s "
            + $"({started.Elapsed.TotalSeconds:F1} s spent; last: {lastProblem}). Nothing was applied twice; retry with the same ids.");
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
            LedgerError.BatchTooLarge => $"A batch holds at most {MaxBatchTransfers} transfers; this one has {batch.Count}.",
            _ => "A batch must not contain the same transfer id twice.",
        });
        return new BatchOutcome(batch.Select(transfer => (TransferOutcome)new TransferOutcome.Failed(transfer.Id, error)).ToArray(), error);
    }

    /// <summary>Reads what the batch needs (in rounds: a post's accounts are known only once its pending transfer is
    /// read) and evaluates it. Returns either a final outcome (a rejection, or nothing new to write) or the plan.</summary>
    private async Task<(BatchOutcome? Outcome, Evaluated[]? Evaluations)> EvaluateAsync(
        IReadOnlyList<TransferRequest> batch, WorkingSet set, bool optimistic, CancellationToken cancellationToken)
    {
        for (var round = 1; round <= MaxReadRounds; round++)
        {
            set.StartEvaluation();
            var evaluator = new TransferEvaluator(keys, set, time.GetUtcNow());
            var evaluations = batch.Select((transfer, index) => evaluator.Evaluate(transfer, index)).ToArray();
            if (set.Missing.Count > 0)
            {
                var toRead = optimistic ? FillFromHints(batch, set) : [.. set.Missing];
                if (toRead.Count > 0)
                {
                    await ReadIntoAsync(set, toRead, serializable: optimistic, cancellationToken);
                }

                continue;
            }

            if (evaluations.Any(evaluation => evaluation is Evaluated.Rejected))
            {
                return (Rejected(batch, evaluations), null);
            }

            if (set.Writes.Count == 0)
            {
                return (Committed(evaluations, revision: 0), null);
            }

            if (set.Writes.Count > MaxTxnOps)
            {
                var error = new LedgerError(LedgerError.BatchTooLarge, $"The batch needs {set.Writes.Count} writes; etcd allows {MaxTxnOps}.");
                return (new BatchOutcome(batch.Select(transfer => (TransferOutcome)new TransferOutcome.Failed(transfer.Id, error)).ToArray(), error), null);
            }

            return (null, evaluations);
        }

        throw new InvalidOperationException($"Evaluation still needed keys after {MaxReadRounds} read rounds.");
    }

    private static BatchOutcome Rejected(IReadOnlyList<TransferRequest> batch, Evaluated[] evaluations)
    {
        var first = evaluations.OfType<Evaluated.Rejected>().First();
        return new BatchOutcome(batch.Select((transfer, index) => (TransferOutcome)new TransferOutcome.Failed(
            transfer.Id,
            evaluations[index] is Evaluated.Rejected rejected
                ? rejected.Error
                : new LedgerError(LedgerError.LinkedTransferFailed, $"Not applied: transfer {batch[Array.IndexOf(evaluations, first)].Id} in the same batch failed ({first.Error.Code}).")))
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
        return (request, await TxnAsync(request, cancellationToken));
    }

    /// <summary>Answers what it can from hints: accounts from the cache, and this batch's own transfer ids as absent
    /// (a transfer submitted is usually new; if it is not, the create-only compare fails and the retry reads it).
    /// Returns the keys still to read.</summary>
    private List<string> FillFromHints(IReadOnlyList<TransferRequest> batch, WorkingSet set)
    {
        var ownTransferKeys = batch.Select(transfer => keys.Transfer(transfer.Id)).ToHashSet(StringComparer.Ordinal);
        var toRead = new List<string>();
        foreach (var key in set.Missing)
        {
            if (ownTransferKeys.Contains(key))
            {
                set.AddRead(key, StoredValue.Absent);
            }
            else if (IsAccountKey(key) && accountCache.TryGet(key, out var cached))
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

    private bool IsAccountKey(string key) =>
        key.StartsWith(keys.AccountsPrefix, StringComparison.Ordinal) || key.StartsWith(keys.SystemPrefix, StringComparison.Ordinal);

    private void RememberWrites(TxnRequest request, long revision)
    {
        foreach (var put in request.Success.Select(op => op.RequestPut).Where(put => put is not null))
        {
            var key = put.Key.ToStringUtf8();
            if (IsAccountKey(key))
            {
                accountCache.Remember(key, new StoredValue(put.Value, revision));
            }
        }
    }

    private void ForgetAccounts(WorkingSet set)
    {
        foreach (var key in set.Writes.Keys.Where(IsAccountKey))
        {
            accountCache.Forget(key);
        }
    }

    private async Task ReadIntoAsync(WorkingSet set, IReadOnlyList<string> wanted, bool serializable, CancellationToken cancellationToken)
    {
        foreach (var chunk in wanted.Chunk(MaxTxnOps))
        {
            var request = new TxnRequest();
            foreach (var key in chunk)
            {
                request.Success.Add(new RequestOp { RequestRange = new RangeRequest { Key = EtcdBytes.Key(key), Serializable = serializable } });
            }

            var response = await TxnAsync(request, cancellationToken);
            for (var index = 0; index < chunk.Length; index++)
            {
                var kv = response.Responses[index].ResponseRange.Kvs.FirstOrDefault();
                var value = kv is null ? StoredValue.Absent : new StoredValue(kv.Value, kv.ModRevision);
                set.AddRead(chunk[index], value);
                if (value.Exists && IsAccountKey(chunk[index]))
                {
                    accountCache.Remember(chunk[index], value);
                }
            }
        }
    }

    private async Task<StoredValue> GetAsync(string key, bool serializable, CancellationToken cancellationToken)
    {
        var request = new RangeRequest { Key = EtcdBytes.Key(key), Serializable = serializable };
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(request, cancellationToken: token), cancellationToken);
        var kv = response.Kvs.FirstOrDefault();
        return kv is null ? StoredValue.Absent : new StoredValue(kv.Value, kv.ModRevision);
    }

    private static void ThrowIfRegionFencedOff(IWriteFence? region, TxnResponse response)
    {
        if (region is not null && region.WasFencedOff(response))
        {
            throw new RegionNotWritableException($"This region does not hold {region.Description} (demoted, or another region was promoted); nothing was written.");
        }
    }

    private Task<TxnResponse> TxnAsync(TxnRequest request, CancellationToken cancellationToken) =>
        EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);

    /// <summary>Retries a call that is safe to repeat (a read, or a compare-guarded write) while etcd is unavailable.</summary>
    internal async Task<T> RetryingAsync<T>(Func<CancellationToken, Task<T>> call, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(OperationTimeout);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await call(timeout.Token);
            }
            catch (Exception exception) when (attempt < MaxAttempts && !timeout.IsCancellationRequested
                && (exception is OperationCanceledException || (exception is RpcException rpc && IsTransient(rpc))))
            {
                // Unavailable, or one call's own deadline passed (a frozen member): ask again, likely another member.
                await BackoffAsync(attempt, timeout.Token);
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw new LedgerUnavailableException($"etcd did not answer within {OperationTimeout.TotalSeconds} s.");
            }
        }
    }

    private static bool IsTransient(RpcException exception) =>
        exception.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Internal or StatusCode.Unknown;

    private Task BackoffAsync(int attempt, CancellationToken cancellationToken)
    {
        // Full jitter: spreads conflicting writers apart; capped so a long outage is polled, not slept through.
        var ceiling = Math.Min(MaxBackoff.TotalMilliseconds, Math.Pow(2, Math.Min(attempt, 10)));
        // Real time on purpose: this paces calls to a real cluster, not business time (which tests may fake).
        return Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.NextDouble() * ceiling), cancellationToken);
    }

    private static Account ToAccount(AccountRecord record, long version) => new(
        AccountId.FromStorage(record.Id), Currency.FromCode(record.Currency), record.OverdraftLimitMinor, record.Closed,
        record.BalanceMinor, record.PendingDebitMinor, record.PendingCreditMinor, version);
}

/// <summary>etcd stayed unreachable or contended past the ledger's bounds. An infrastructure fault, so an exception;
/// nothing was applied twice, and retrying with the same transfer ids is safe.</summary>
public sealed class LedgerUnavailableException(string message) : Exception(message);

/// <summary>A guarded write was rejected because its lock had passed to another holder.</summary>
public sealed class FencedOffException(string message) : Exception(message);

/// <summary>A write was rejected because this region is not the active one (its epoch mirror is gone or newer).
/// Nothing was written; the caller should answer 503 with Retry-After, and clients retry (with the same ids) against
/// the active region.</summary>
public sealed class RegionNotWritableException(string message) : Exception(message);

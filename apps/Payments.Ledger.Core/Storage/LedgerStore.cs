using Etcdserverpb;
using Grpc.Core;
using Payments.Etcd;
using Payments.Ledger.Contracts;

namespace Payments.Ledger.Core.Storage;

/// <summary>The ledger's calls to etcd, with the one retry loop every ledger component shares: a call that is safe
/// to repeat (a read, or a compare-guarded write) is retried with jittered backoff while etcd is unavailable, within
/// <see cref="OperationTimeout"/> and <see cref="MaxAttempts"/>.</summary>
internal sealed class LedgerStore(EtcdConnection etcd, LedgerKeys keys)
{
    /// <summary>Conflicts or unavailable members before an operation gives up (it is safe to retry it later with the same ids).</summary>
    public const int MaxAttempts = 32;

    /// <summary>etcd's default <c>--max-txn-ops</c>: the ledger's transactions stay within it, so it runs on any etcd (ours allow
    /// more, <see cref="Payments.Etcd.EtcdLimits.MaxTxnOps"/>, for Dapr's workflow state).</summary>
    public const int MaxTxnOps = 128;

    public static readonly TimeSpan OperationTimeout = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromMilliseconds(200);

    public EtcdConnection Etcd => etcd;

    public LedgerKeys Keys => keys;

    public Task<TxnResponse> TxnAsync(TxnRequest request, CancellationToken cancellationToken) =>
        EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);

    public Task<RangeResponse> RangeAsync(RangeRequest request, CancellationToken cancellationToken) =>
        EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(request, cancellationToken: token), cancellationToken);

    public async Task<StoredValue> GetAsync(string key, bool serializable, CancellationToken cancellationToken)
    {
        var response = await RangeAsync(new RangeRequest { Key = EtcdBytes.Key(key), Serializable = serializable }, cancellationToken);
        var kv = response.Kvs.FirstOrDefault();
        return kv is null ? StoredValue.Absent : new StoredValue(kv.Value, kv.ModRevision, kv.Version);
    }

    /// <summary>Reads many keys, <see cref="MaxTxnOps"/> per transaction (one revision per chunk).</summary>
    public async Task<IReadOnlyDictionary<string, StoredValue>> ReadManyAsync(
        IReadOnlyList<string> wanted, bool serializable, CancellationToken cancellationToken)
    {
        var values = new Dictionary<string, StoredValue>(StringComparer.Ordinal);
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
                values[chunk[index]] = kv is null ? StoredValue.Absent : new StoredValue(kv.Value, kv.ModRevision, kv.Version);
            }
        }

        return values;
    }

    /// <summary><see cref="RetryingAsync"/> for a write carrying the region's fence, taken afresh for every attempt:
    /// taken once, a retry sent after the region's writable deadline (an etcd election of many seconds, which also
    /// renews every lease's TTL) still carried a fence that said it was not past it, and committed in a region that
    /// had handed over (failover review). Returns the fence of the attempt that was answered.</summary>
    public async Task<(TxnResponse Response, IWriteFence? Region)> FencedTxnAsync(
        TxnRequest request, Func<IWriteFence?>? regionFence, CancellationToken cancellationToken)
    {
        IWriteFence? region = null;
        var response = await RetryingAsync(token =>
        {
            var attempt = request.Clone();
            region = regionFence?.Invoke();
            region?.AddFence(attempt);
            return TxnAsync(attempt, token);
        }, cancellationToken);
        return (response, region);
    }

    /// <summary>Retries a call that is safe to repeat while etcd is unavailable.</summary>
    public Task<T> RetryingAsync<T>(Func<CancellationToken, Task<T>> call, CancellationToken cancellationToken) =>
        RetryingAsync(call, OperationTimeout, cancellationToken);

    /// <summary><see cref="RetryingAsync{T}(Func{CancellationToken, Task{T}}, CancellationToken)"/> within
    /// <paramref name="operationTimeout"/>: once it has passed, whether in a call or in the back-off between two,
    /// the answer is <see cref="LedgerUnavailableException"/> (a 503 to the ledger's callers). The timeout firing in
    /// the back-off escaped as a bare TaskCanceledException: the ledger answered 500 to a frozen etcd member, and the
    /// sweepers logged an unexpected failure (ledger review).</summary>
    internal static async Task<T> RetryingAsync<T>(Func<CancellationToken, Task<T>> call, TimeSpan operationTimeout, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(operationTimeout);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await call(timeout.Token);
            }
            catch (Exception exception) when (!cancellationToken.IsCancellationRequested
                && (exception is OperationCanceledException || (exception is RpcException rpc && IsTransient(rpc))))
            {
                if (timeout.IsCancellationRequested)
                {
                    throw new LedgerUnavailableException($"etcd did not answer within {operationTimeout.TotalSeconds} s.");
                }

                if (attempt >= MaxAttempts)
                {
                    throw;
                }
            }

            // Unavailable, or one call's own deadline passed (a frozen member): ask again, likely another member.
            await BackoffAsync(attempt, timeout.Token);
        }
    }

    public static bool IsTransient(RpcException exception) =>
        exception.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Internal or StatusCode.Unknown;

    /// <summary>The pause before attempt <paramref name="attempt"/> + 1. Cancelled, it ends early without throwing:
    /// the loop's next step sees the token and answers as its own timeout or its caller's cancellation says.</summary>
    public static async Task BackoffAsync(int attempt, CancellationToken cancellationToken)
    {
        // Full jitter: spreads conflicting writers apart; capped so a long outage is polled, not slept through.
        var ceiling = Math.Min(MaxBackoff.TotalMilliseconds, Math.Pow(2, Math.Min(attempt, 10)));
        // Real time on purpose: this paces calls to a real cluster, not business time (which tests may fake).
        await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.NextDouble() * ceiling), cancellationToken)
            .ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }
}

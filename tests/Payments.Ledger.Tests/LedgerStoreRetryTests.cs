using Grpc.Core;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core.Storage;

namespace Payments.Ledger.Tests;

/// <summary>The ledger's shared retry loop, without etcd: what matters is what escapes it. A frozen member fails each
/// call on its deadline; when the operation's own timeout then fired during the back-off between two calls, a bare
/// TaskCanceledException escaped — a 500 from the ledger service instead of its 503 (ledger review). Calls here fail at
/// once, so nearly all of the short timeout is spent in back-offs: before the fix this failed on most runs.</summary>
public sealed class LedgerStoreRetryTests
{
    private static readonly TimeSpan ShortTimeout = TimeSpan.FromMilliseconds(30);

    [Fact]
    public async Task ATimeoutThatEndsInTheBackOff_SaysTheLedgerIsUnavailable()
    {
        for (var run = 0; run < 20; run++)
        {
            var calls = 0;
            var refused = await Assert.ThrowsAsync<LedgerUnavailableException>(() => LedgerStore.RetryingAsync<int>(
                _ => { calls++; throw new RpcException(new Status(StatusCode.DeadlineExceeded, "etcd call timed out")); },
                ShortTimeout, CancellationToken.None));

            Assert.Contains("did not answer within", refused.Message, StringComparison.Ordinal);
            Assert.InRange(calls, 2, LedgerStore.MaxAttempts - 1); // retried, and ended by the timeout, not by the attempts
        }
    }

    [Fact]
    public async Task TheCallersCancellation_StaysACancellation()
    {
        using var caller = new CancellationTokenSource();
        var calls = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => LedgerStore.RetryingAsync<int>(
            token =>
            {
                if (++calls == 3)
                {
                    caller.Cancel(); // the caller leaves during the third call, which sees it (as EtcdConnection.CallAsync does)
                    token.ThrowIfCancellationRequested();
                }

                throw new RpcException(new Status(StatusCode.Unavailable, "no member"));
            },
            TimeSpan.FromMinutes(1), caller.Token));
        Assert.Equal(3, calls);
    }

    [Fact]
    public async Task AnErrorThatIsNotTransient_IsNotRetried()
    {
        var calls = 0;
        var error = await Assert.ThrowsAsync<RpcException>(() => LedgerStore.RetryingAsync<int>(
            _ => { calls++; throw new RpcException(new Status(StatusCode.ResourceExhausted, "etcdserver: mvcc: database space exceeded")); },
            TimeSpan.FromMinutes(1), CancellationToken.None));
        Assert.Equal((StatusCode.ResourceExhausted, 1), (error.StatusCode, calls));
    }
}

using System.Diagnostics;
using Etcdserverpb;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;
using Payments.Domain;
using Payments.Etcd;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core;
using Payments.Ledger.Core.Expiry;
using Payments.Ledger.IntegrationTests.Infrastructure;
using Payments.Testing;

namespace Payments.Ledger.IntegrationTests;

[Collection(EtcdCollection.Name)]
public sealed class FencedLockTests(EtcdClusterFixture etcd)
{
    private static readonly TimeSpan ShortLease = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan TakeoverBound = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task GuardedWrite_OfPausedFormerHolder_IsRejected_AfterAnotherHolderTookOver()
    {
        var lockKey = EtcdClusterFixture.NewPrefix() + "lock";
        var resource = EtcdClusterFixture.NewPrefix() + "resource";
        var holderA = await EtcdFencedLock.TryAcquireAsync(etcd.Connection, lockKey, "A", ShortLease, TimeProvider.System, NullLogger.Instance, CancellationToken.None);
        Assert.NotNull(holderA);
        Assert.Null(await EtcdFencedLock.TryAcquireAsync(etcd.Connection, lockKey, "B", ShortLease, TimeProvider.System, NullLogger.Instance, CancellationToken.None));

        // A freezes: no more keep-alives, but it still believes it holds the lock.
        await holderA.SimulatePauseAsync();
        await using var holderB = await AcquireAfterExpiryAsync(lockKey, "B");

        Assert.True(holderB.FencingToken > holderA.FencingToken);
        var staleWrite = await GuardedPutAsync(holderA, resource, "from A");
        Assert.False(staleWrite.Succeeded);
        Assert.True(holderA.WasFencedOff(staleWrite));
        var freshWrite = await GuardedPutAsync(holderB, resource, "from B");
        Assert.True(freshWrite.Succeeded);
        var stored = await etcd.Connection.Client.GetValAsync(resource);
        Assert.Equal("from B", stored);
        await holderA.DisposeAsync();
    }

    [Fact]
    public async Task HoldExpiry_ByPausedFormerSweeper_IsRejected_AndChangesNothing()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        var ledger = etcd.NewLedger(time);
        var (debtor, creditor) = await TransferRetryTests.OpenPairAsync(ledger, fundsMinor: 500);
        var pendingId = TransferId.Parse("hold-1");
        var pending = new TransferRequest.Pending(pendingId, debtor, creditor, new Money(500, Currency.Usd), TimeSpan.FromSeconds(30));
        Assert.IsType<TransferOutcome.Applied>(await ledger.TransferAsync(pending, CancellationToken.None));
        time.Advance(TimeSpan.FromSeconds(31));
        var sweeper = new HoldExpirySweeper(ledger, "A", NullLogger<HoldExpirySweeper>.Instance);
        var staleLock = await EtcdFencedLock.TryAcquireAsync(etcd.Connection, sweeper.LockKey, "A", ShortLease, TimeProvider.System, NullLogger.Instance, CancellationToken.None);
        Assert.NotNull(staleLock);
        await staleLock.SimulatePauseAsync();
        await using var newHolder = await AcquireAfterExpiryAsync(sweeper.LockKey, "B");

        await Assert.ThrowsAsync<FencedOffException>(() => sweeper.SweepAsync(staleLock, CancellationToken.None));

        var account = await ledger.GetAccountAsync(debtor, CancellationToken.None);
        Assert.Equal(500, account!.PendingDebitMinor);
        await staleLock.DisposeAsync();
    }

    private async Task<EtcdFencedLock> AcquireAfterExpiryAsync(string lockKey, string owner)
    {
        // Poll, bounded: the former holder's lease expires on etcd's clock, a few seconds from now.
        var waited = Stopwatch.StartNew();
        while (waited.Elapsed < TakeoverBound)
        {
            if (await EtcdFencedLock.TryAcquireAsync(etcd.Connection, lockKey, owner, ShortLease, TimeProvider.System, NullLogger.Instance, CancellationToken.None) is { } acquired)
            {
                return acquired;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100));
        }

        throw new TimeoutException($"{owner} could not take {lockKey} within {TakeoverBound}.");
    }

    private async Task<TxnResponse> GuardedPutAsync(EtcdFencedLock holder, string key, string value)
    {
        var request = new TxnRequest();
        request.Success.Add(EtcdBytes.Put(key, ByteString.CopyFromUtf8(value)));
        holder.AddFence(request);
        return await etcd.Connection.Kv.TxnAsync(request);
    }
}

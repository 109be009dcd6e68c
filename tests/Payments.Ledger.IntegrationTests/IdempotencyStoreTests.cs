using Payments.Testing;
using Etcdserverpb;
using Microsoft.Extensions.Time.Testing;
using Payments.Domain;
using Payments.Etcd;
using Payments.Ledger.IntegrationTests.Infrastructure;

namespace Payments.Ledger.IntegrationTests;

[Collection(EtcdCollection.Name)]
public sealed class IdempotencyStoreTests(EtcdClusterFixture etcd)
{
    private const string Merchant = "merchant-a";
    private static readonly IdempotencyKey Key = IdempotencyKey.Parse("order-42/attempt");

    [Fact]
    public async Task SameKeyAndBody_ReplaysTheFirstResponse_AndOtherBodyIsRefused()
    {
        var store = new IdempotencyStore(etcd.Connection, EtcdClusterFixture.NewPrefix(), TimeProvider.System);
        var fingerprint = IdempotencyStore.Fingerprint("POST", "/v1/payments", "{\"amountMinor\":1250}");

        var started = Assert.IsType<IdempotencyBegin.Started>(await store.BeginAsync(Merchant, Key, fingerprint, CancellationToken.None));
        Assert.True(await store.CompleteAsync(started.Claim, 202, "{\"paymentId\":\"p1\"}", "application/json", CancellationToken.None));

        var replay = Assert.IsType<IdempotencyBegin.Replay>(await store.BeginAsync(Merchant, Key, fingerprint, CancellationToken.None));
        Assert.Equal((202, "{\"paymentId\":\"p1\"}", "application/json"), (replay.StatusCode, replay.Body, replay.ContentType));
        var other = IdempotencyStore.Fingerprint("POST", "/v1/payments", "{\"amountMinor\":9999}");
        Assert.IsType<IdempotencyBegin.FingerprintMismatch>(await store.BeginAsync(Merchant, Key, other, CancellationToken.None));
        // Another merchant's identical key is a different record.
        Assert.IsType<IdempotencyBegin.Started>(await store.BeginAsync("merchant-b", Key, other, CancellationToken.None));
    }

    [Fact]
    public async Task ConcurrentRequestsWithOneKey_StartExactlyOnce()
    {
        var store = new IdempotencyStore(etcd.Connection, EtcdClusterFixture.NewPrefix(), TimeProvider.System);
        var fingerprint = IdempotencyStore.Fingerprint("same body");

        var outcomes = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => Task.Run(() => store.BeginAsync(Merchant, Key, fingerprint, CancellationToken.None))));

        Assert.Single(outcomes.OfType<IdempotencyBegin.Started>());
        Assert.Equal(19, outcomes.OfType<IdempotencyBegin.InProgress>().Count());
    }

    [Fact]
    public async Task InProgressClaim_CanBeTakenOver_OnlyAfterItTimedOut_AndTheStaleOwnerCannotComplete()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var store = new IdempotencyStore(etcd.Connection, EtcdClusterFixture.NewPrefix(), time);
        var fingerprint = IdempotencyStore.Fingerprint("body");
        var crashed = Assert.IsType<IdempotencyBegin.Started>(await store.BeginAsync(Merchant, Key, fingerprint, CancellationToken.None));

        Assert.IsType<IdempotencyBegin.InProgress>(await store.BeginAsync(Merchant, Key, fingerprint, CancellationToken.None));
        time.Advance(IdempotencyStore.InProgressTimeout + TimeSpan.FromSeconds(1));
        var takeover = Assert.IsType<IdempotencyBegin.Started>(await store.BeginAsync(Merchant, Key, fingerprint, CancellationToken.None));

        Assert.False(await store.CompleteAsync(crashed.Claim, 500, "late", null, CancellationToken.None));
        Assert.True(await store.CompleteAsync(takeover.Claim, 201, "done", null, CancellationToken.None));
        Assert.Equal("done", Assert.IsType<IdempotencyBegin.Replay>(await store.BeginAsync(Merchant, Key, fingerprint, CancellationToken.None)).Body);
    }

    [Fact]
    public async Task Records_AreKeptAtLeast24Hours_ThroughTheirLease()
    {
        var prefix = EtcdClusterFixture.NewPrefix();
        var store = new IdempotencyStore(etcd.Connection, prefix, TimeProvider.System);
        var started = Assert.IsType<IdempotencyBegin.Started>(await store.BeginAsync(Merchant, Key, "f", CancellationToken.None));

        var stored = await etcd.Connection.Client.GetAsync(started.Claim.RecordKey);
        var lease = await etcd.Connection.Leases.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = stored.Kvs[0].Lease });

        Assert.True(lease.TTL >= TimeSpan.FromHours(24).TotalSeconds, $"lease TTL {lease.TTL} s");
    }

    [Fact]
    public async Task LostSharedLease_IsReplaced_AndRequestsKeepWorking()
    {
        var store = new IdempotencyStore(etcd.Connection, EtcdClusterFixture.NewPrefix(), TimeProvider.System);
        var first = Assert.IsType<IdempotencyBegin.Started>(await store.BeginAsync(Merchant, IdempotencyKey.Parse("k1"), "f", CancellationToken.None));
        var lease = (await etcd.Connection.Client.GetAsync(first.Claim.RecordKey)).Kvs[0].Lease;
        await etcd.Connection.Leases.LeaseRevokeAsync(new LeaseRevokeRequest { ID = lease });

        var second = Assert.IsType<IdempotencyBegin.Started>(await store.BeginAsync(Merchant, IdempotencyKey.Parse("k2"), "f", CancellationToken.None));

        var newLease = (await etcd.Connection.Client.GetAsync(second.Claim.RecordKey)).Kvs[0].Lease;
        Assert.NotEqual(lease, newLease);
        Assert.True((await etcd.Connection.Leases.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = newLease })).TTL >= TimeSpan.FromHours(24).TotalSeconds);
    }

    [Fact]
    public async Task ReleasedClaim_LetsTheNextRequestRun()
    {
        var store = new IdempotencyStore(etcd.Connection, EtcdClusterFixture.NewPrefix(), TimeProvider.System);
        var first = Assert.IsType<IdempotencyBegin.Started>(await store.BeginAsync(Merchant, Key, "f", CancellationToken.None));
        await store.ReleaseAsync(first.Claim, CancellationToken.None);
        Assert.IsType<IdempotencyBegin.Started>(await store.BeginAsync(Merchant, Key, "f", CancellationToken.None));
    }

    /// <summary>A release or a takeover keeps the record's creation and lease: nothing within the window moves its
    /// expiry (else a key could outlive the window, or expire under a retry).</summary>
    [Fact]
    public async Task CreationAndLease_AreKeptByReleaseAndTakeover()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var store = new IdempotencyStore(etcd.Connection, EtcdClusterFixture.NewPrefix(), time);
        var first = Assert.IsType<IdempotencyBegin.Started>(await store.BeginAsync(Merchant, Key, "f", CancellationToken.None)).Claim;
        await store.ReleaseAsync(first, CancellationToken.None);
        time.Advance(TimeSpan.FromSeconds(1));
        var afterRelease = Assert.IsType<IdempotencyBegin.Started>(await store.BeginAsync(Merchant, Key, "f", CancellationToken.None)).Claim;
        time.Advance(IdempotencyStore.InProgressTimeout + TimeSpan.FromSeconds(1));
        var afterTakeover = Assert.IsType<IdempotencyBegin.Started>(await store.BeginAsync(Merchant, Key, "f", CancellationToken.None)).Claim;

        Assert.Equal(first.CreatedAt, afterRelease.CreatedAt);
        Assert.Equal(first.CreatedAt, afterTakeover.CreatedAt);
        Assert.Equal(first.Lease, afterRelease.Lease);
        Assert.Equal(first.Lease, afterTakeover.Lease);
        Assert.NotEqual(first.ModRevision, afterTakeover.ModRevision);
    }

    /// <summary>A released key keeps its body's fingerprint: its lifetime's operation id may already name an operation
    /// made from that body (a payment record written before the failure), so another body is refused, not run on it.</summary>
    [Fact]
    public async Task ReleasedClaim_StillRefusesAnotherBody()
    {
        var store = new IdempotencyStore(etcd.Connection, EtcdClusterFixture.NewPrefix(), TimeProvider.System);
        var first = Assert.IsType<IdempotencyBegin.Started>(await store.BeginAsync(Merchant, Key, "f", CancellationToken.None));
        await store.ReleaseAsync(first.Claim, CancellationToken.None);

        Assert.IsType<IdempotencyBegin.FingerprintMismatch>(await store.BeginAsync(Merchant, Key, "other", CancellationToken.None));
    }

    /// <summary>During an upgrade a record written by the previous version (with a lifetime id, since dropped) is
    /// still read and taken over, and the key's operation id without a variant is the one it always was.</summary>
    [Fact]
    public async Task RecordOfThePreviousVersion_IsTakenOver_AndTheOperationIdIsUnchanged()
    {
        var store = new IdempotencyStore(etcd.Connection, EtcdClusterFixture.NewPrefix(), TimeProvider.System);
        var recordKey = store.RecordKey(Merchant, Key);
        var lapsed = DateTimeOffset.UtcNow.AddMinutes(-1);
        await etcd.Connection.Client.PutAsync(recordKey,
            $"{{\"fingerprint\":\"f\",\"state\":\"InProgress\",\"createdAt\":\"{lapsed:O}\",\"lockedUntil\":\"{lapsed:O}\",\"lifetimeId\":\"0a1b\"}}");

        var takeover = Assert.IsType<IdempotencyBegin.Started>(await store.BeginAsync(Merchant, Key, "f", CancellationToken.None)).Claim;

        Assert.Equal(lapsed, takeover.CreatedAt);
        var legacy = "pay_" + Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(
            System.Text.Encoding.UTF8.GetBytes($"{Merchant}\n{Key.Value}")))[..24].ToLowerInvariant();
        Assert.Equal(legacy, IdempotencyStore.OperationId("pay_", 24, Merchant, Key, variant: null));
    }

    [Fact]
    public async Task Peek_AnswersLikeBegin_WithoutWriting()
    {
        var store = new IdempotencyStore(etcd.Connection, EtcdClusterFixture.NewPrefix(), TimeProvider.System);
        Assert.Null(await store.PeekAsync(Merchant, Key, "f", CancellationToken.None));
        var started = Assert.IsType<IdempotencyBegin.Started>(await store.BeginAsync(Merchant, Key, "f", CancellationToken.None));
        var revision = (await etcd.Connection.Client.GetAsync(started.Claim.RecordKey)).Header.Revision;

        var inProgress = Assert.IsType<IdempotencyBegin.InProgress>(await store.PeekAsync(Merchant, Key, "f", CancellationToken.None));
        Assert.IsType<IdempotencyBegin.FingerprintMismatch>(await store.PeekAsync(Merchant, Key, "other", CancellationToken.None));

        Assert.Equal(started.Claim.RecordKey, inProgress.RecordKey);
        Assert.Equal(revision, (await etcd.Connection.Client.GetAsync(started.Claim.RecordKey)).Header.Revision);
        await store.ReleaseAsync(started.Claim, CancellationToken.None);
        Assert.Null(await store.PeekAsync(Merchant, Key, "f", CancellationToken.None));
    }
}

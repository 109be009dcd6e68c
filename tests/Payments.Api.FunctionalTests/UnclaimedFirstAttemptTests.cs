using System.Net;
using System.Text.Json;
using Etcdserverpb;
using Payments.Domain;
using Payments.Etcd;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Client.Records;

namespace Payments.Api.FunctionalTests;

/// <summary>A new payment claims no Idempotency-Key first: its acceptance writes the key's record with the answer in
/// the record's own transaction, once — and never the payment without the key's record, which another request with the
/// same key could otherwise claim with another body.</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class UnclaimedFirstAttemptTests(ApiSystemFixture system)
{
    [Fact]
    public async Task ANewKey_IsWrittenOnce_WithItsAnswer_AcceptedOrRefused()
    {
        var merchant = $"m-{Guid.NewGuid():N}"[..20];
        var client = await system.ClientForAsync(merchant);
        var (debtor, creditor) = await IdempotencyAndIsolationTests.AccountsAsync(client);
        var (accepted, refused) = (Guid.NewGuid().ToString(), Guid.NewGuid().ToString());

        var payment = await client.PayAsync(debtor, creditor, 100, accepted);
        var unknown = await client.PayAsync(debtor, "no-such-account", 100, refused);

        Assert.Equal(HttpStatusCode.Accepted, payment.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        foreach (var (key, status) in new[] { (accepted, 202), (refused, 404) })
        {
            var stored = await RecordOfAsync(merchant, key);
            // Version 1: created completed. The claimed way writes it twice (claim, then completion).
            Assert.Equal(1, stored.Version);
            var record = JsonDocument.Parse(stored.Value.ToStringUtf8()).RootElement;
            Assert.Equal(("Completed", status), (record.GetProperty("state").GetString(), record.GetProperty("statusCode").GetInt32()));
        }

        var again = await client.PayAsync(debtor, creditor, 100, accepted);
        Assert.Equal(await payment.Content.ReadAsStringAsync(), await again.Content.ReadAsStringAsync());
        Assert.Equal(1, (await RecordOfAsync(merchant, accepted)).Version); // a retry reads it, and writes nothing
    }

    [Fact]
    public async Task WhenAnotherRequestClaimedTheKeyMeanwhile_NothingIsWritten()
    {
        var (store, records) = Stores();
        var key = NewKey();
        var unclaimed = await store.UnclaimedAsync("merchant-u", key, "fingerprint-a", CancellationToken.None);
        var other = await store.BeginAsync("merchant-u", key, "fingerprint-b", CancellationToken.None);
        Assert.IsType<IdempotencyBegin.Started>(other);
        var order = NewOrder();

        var created = await records.CreateWithAsync(PaymentRecord.Accepted(order, DateTimeOffset.UtcNow), Answer(unclaimed), CancellationToken.None);

        Assert.Null(created);
        Assert.Null(await records.GetAsync(order.PaymentId, CancellationToken.None)); // not the record alone
        Assert.IsType<IdempotencyBegin.FingerprintMismatch>(await store.BeginAsync("merchant-u", key, "fingerprint-a", CancellationToken.None));
    }

    [Fact]
    public async Task OnAFreeKey_RecordAndAnswer_AreOneTransaction_AndTheKeyReplaysTheAnswer()
    {
        var (store, records) = Stores();
        var key = NewKey();
        var unclaimed = await store.UnclaimedAsync("merchant-u", key, "fingerprint-a", CancellationToken.None);
        Assert.True(unclaimed.IsUnclaimed);
        var order = NewOrder();

        Assert.Equal(true, (await records.CreateWithAsync(PaymentRecord.Accepted(order, DateTimeOffset.UtcNow), Answer(unclaimed), CancellationToken.None))?.Created);

        var record = await records.GetAsync(order.PaymentId, CancellationToken.None);
        Assert.Equal(record!.Value.Revision, (await RangeAsync(unclaimed.RecordKey)).ModRevision);
        var replay = Assert.IsType<IdempotencyBegin.Replay>(await store.BeginAsync("merchant-u", key, "fingerprint-a", CancellationToken.None));
        Assert.Equal((202, "{\"accepted\":true}"), (replay.StatusCode, replay.Body));
        Assert.Equal(false, (await records.CreateWithAsync(PaymentRecord.Accepted(order, DateTimeOffset.UtcNow), Answer(unclaimed), CancellationToken.None))?.Created);
    }

    private (IdempotencyStore Store, PaymentRecordStore Records) Stores()
    {
        var prefix = $"/functional-unclaimed/{Guid.NewGuid():N}/";
        return (new IdempotencyStore(system.Etcd, prefix + "idempotency/", TimeProvider.System), new PaymentRecordStore(system.Etcd, prefix + "payments/"));
    }

    private static TxnRequest Answer(IdempotencyClaim claim)
    {
        var request = new TxnRequest();
        IdempotencyStore.AddCompletion(request, claim, 202, "{\"accepted\":true}", "application/json");
        return request;
    }

    private static IdempotencyKey NewKey() => IdempotencyKey.Parse(Guid.NewGuid().ToString());

    private static PaymentOrder NewOrder() => new($"pay_{Guid.NewGuid():N}", "merchant-u", "acct-d", "acct-c", 100, "USD", null);

    private async Task<Mvccpb.KeyValue> RecordOfAsync(string merchant, string key)
    {
        var store = new IdempotencyStore(system.Etcd, ApiSystemFixture.KeyPrefix + "idempotency/", TimeProvider.System);
        return await RangeAsync(store.RecordKey(merchant, IdempotencyKey.Parse(key)));
    }

    private async Task<Mvccpb.KeyValue> RangeAsync(string key) =>
        (await system.Etcd.Kv.RangeAsync(new RangeRequest { Key = EtcdBytes.Key(key) })).Kvs.Single();
}

using Etcdserverpb;
using Google.Protobuf;
using Payments.Etcd;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Client.Records;

namespace Payments.Api.FunctionalTests;

/// <summary>A payment record created together with another write (the API stores its Idempotency-Key answer so): both
/// in one transaction when that write's compares hold; otherwise neither, never the record alone.</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class PaymentRecordCreateTests(ApiSystemFixture system)
{
    [Fact]
    public async Task WhenTheCompanionsComparesHold_BothAreWritten_InOneRevision()
    {
        var (records, prefix) = NewStore();
        var order = NewOrder();

        var (record, written) = (await records.CreateWithAsync(PaymentRecord.Accepted(order, DateTimeOffset.UtcNow), Companion(prefix + "answer"), CancellationToken.None))!.Value;

        Assert.True(written);
        Assert.Equal(order.PaymentId, record.PaymentId);
        Assert.Equal(await CreateRevisionAsync(records.KeyOf(order.PaymentId)), await CreateRevisionAsync(prefix + "answer"));
    }

    /// <summary>The finding (a review's): when the companion's compare failed — the request's Idempotency-Key claim
    /// taken over by a retry after the request stalled past the claim's timeout — the record was created alone. The
    /// retry names the key's payment by its own day: across UTC midnight the two had different ids, two payments for
    /// one key and body, a double debit.</summary>
    [Fact]
    public async Task WhenTheCompanionsComparesFail_NothingIsWritten()
    {
        var (records, prefix) = NewStore();
        var order = NewOrder();
        await PutAsync(prefix + "answer"); // the companion expects it absent (as an answer expects its claim unchanged)

        var created = await records.CreateWithAsync(PaymentRecord.Accepted(order, DateTimeOffset.UtcNow), Companion(prefix + "answer"), CancellationToken.None);

        Assert.Null(created);
        Assert.Equal(0, await CreateRevisionAsync(records.KeyOf(order.PaymentId)));
        Assert.Equal("taken", await ValueAsync(prefix + "answer"));
    }

    [Fact]
    public async Task WhenTheRecordExists_ItIsReturned_AndTheCompanionIsNotWritten()
    {
        var (records, prefix) = NewStore();
        var order = NewOrder();
        var first = await records.CreateAsync(PaymentRecord.Accepted(order, DateTimeOffset.UtcNow.AddMinutes(-1)), CancellationToken.None);

        var (record, written) = (await records.CreateWithAsync(PaymentRecord.Accepted(order, DateTimeOffset.UtcNow), Companion(prefix + "answer"), CancellationToken.None))!.Value;

        Assert.False(written);
        Assert.Equal(first.CreatedAt, record.CreatedAt);
        Assert.Equal(0, await CreateRevisionAsync(prefix + "answer"));
    }

    private (PaymentRecordStore Records, string Prefix) NewStore()
    {
        var prefix = $"/functional-create/{Guid.NewGuid():N}/";
        return (new PaymentRecordStore(system.Etcd, prefix + "payments/"), prefix);
    }

    private static PaymentOrder NewOrder() => new($"pay_{Guid.NewGuid():N}", "merchant-c", "acct-d", "acct-c", 100, "USD", null);

    /// <summary>A companion write: puts <paramref name="key"/> if it is still absent.</summary>
    private static TxnRequest Companion(string key)
    {
        var request = new TxnRequest();
        request.Compare.Add(EtcdBytes.CreateRevisionIs(key, 0));
        request.Success.Add(EtcdBytes.Put(key, ByteString.CopyFromUtf8("answered")));
        return request;
    }

    private async Task PutAsync(string key) =>
        await system.Etcd.Kv.PutAsync(new PutRequest { Key = EtcdBytes.Key(key), Value = ByteString.CopyFromUtf8("taken") });

    private async Task<long> CreateRevisionAsync(string key) =>
        (await system.Etcd.Kv.RangeAsync(new RangeRequest { Key = EtcdBytes.Key(key) })).Kvs.FirstOrDefault()?.CreateRevision ?? 0;

    private async Task<string?> ValueAsync(string key) =>
        (await system.Etcd.Kv.RangeAsync(new RangeRequest { Key = EtcdBytes.Key(key) })).Kvs.FirstOrDefault()?.Value.ToStringUtf8();
}

using Payments.Domain;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Client.Records;

namespace Payments.Api.FunctionalTests;

/// <summary>A record read by <see cref="PaymentRecordStore.GetAndKeepAsync"/> (the saga's risk step) is where the
/// next change of that payment in the process starts (the outcome): one etcd read fewer per payment, and a record that
/// changed meanwhile is still never overwritten blindly.</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class PaymentRecordKeptReadTests(ApiSystemFixture system)
{
    private const int Payments = 40;
    private static readonly string[] Ranges = ["grpc_method=\"Range\"", "grpc_service=\"etcdserverpb.KV\""];

    [Fact]
    public async Task AChangeAfterAKeptRead_ReadsNothingMore()
    {
        var records = NewStore();
        var plain = await RangesDuringAsync(records, keep: false);
        var kept = await RangesDuringAsync(records, keep: true);

        // Each change after a plain read reads the record again; after a kept read it does not. Background work of the
        // fixture meanwhile adds a few reads to either side.
        Assert.True(plain - kept >= Payments * 3 / 4, $"{plain} range requests with plain reads, {kept} with kept ones, for {Payments} changes each");
    }

    [Fact]
    public async Task ARecordChangedAfterTheKeptRead_IsReadAgain_AndNoChangeIsLost()
    {
        var records = NewStore();
        var other = new PaymentRecordStore(system.Etcd, records.Prefix); // another replica of the orchestrator
        var order = NewOrder();
        await records.CreateAsync(PaymentRecord.Accepted(order, DateTimeOffset.UtcNow), CancellationToken.None);
        await records.GetAndKeepAsync(order.PaymentId, CancellationToken.None);
        var review = new PaymentReview(PaymentReview.Approved, "key_elsewhere", DateTimeOffset.UtcNow);
        await other.ChangeAsync(order.PaymentId, record => record with { Review = review }, CancellationToken.None);

        await records.RecordOutcomeAsync(order.PaymentId, PaymentOutcome.Completed(), DateTimeOffset.UtcNow, CancellationToken.None);

        var after = (await records.GetAsync(order.PaymentId, CancellationToken.None))!.Value.Record;
        Assert.Equal(PaymentStatus.Completed, after.Status);
        Assert.Equal(review, after.Review);
    }

    private async Task<double> RangesDuringAsync(PaymentRecordStore records, bool keep)
    {
        var orders = Enumerable.Range(0, Payments).Select(_ => NewOrder()).ToArray();
        foreach (var order in orders)
        {
            await records.CreateAsync(PaymentRecord.Accepted(order, DateTimeOffset.UtcNow), CancellationToken.None);
        }

        var before = await system.Cluster.SumMetricAsync("grpc_server_handled_total", Ranges, CancellationToken.None);
        foreach (var order in orders)
        {
            _ = keep
                ? await records.GetAndKeepAsync(order.PaymentId, CancellationToken.None)
                : await records.GetAsync(order.PaymentId, CancellationToken.None);
            await records.RecordOutcomeAsync(order.PaymentId, PaymentOutcome.Completed(), DateTimeOffset.UtcNow, CancellationToken.None);
        }

        return await system.Cluster.SumMetricAsync("grpc_server_handled_total", Ranges, CancellationToken.None) - before;
    }

    private PaymentRecordStore NewStore() => new(system.Etcd, $"/functional-kept/{Guid.NewGuid():N}/payments/");

    private static PaymentOrder NewOrder() => new($"pay_{Guid.NewGuid():N}", "merchant-k", "acct-d", "acct-c", 100, "USD", null);
}

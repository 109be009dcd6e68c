using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Payments.Cosmos;
using Payments.Domain;
using Payments.Failover.Core.Archiving;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Client.Records;

namespace Payments.Failover.IntegrationTests;

/// <summary>Issue 10's bounded storage for payment records, on real parts (etcd and the local Cosmos-compatible
/// server): finished records older than the retention move to the archive, nothing else does, and a record is always
/// in one of the two.</summary>
[Collection(FailoverCollection.Name)]
public sealed class PaymentArchiverTests(FailoverFixture fixture) : IDisposable
{
    private static readonly TimeSpan KeepFor = TimeSpan.FromDays(8);
    private readonly Microsoft.Azure.Cosmos.CosmosClient client = fixture.Settings().CreateClient();

    public void Dispose() => client.Dispose();

    [Fact]
    public async Task FinishedRecordsOlderThanTheRetention_MoveToTheArchive_OthersStay()
    {
        var (records, archive, time) = await NewAsync();
        var old = await CreateAsync(records, time, "pay_old_completed", PaymentStatus.Completed);
        var oldPending = await CreateAsync(records, time, "pay_old_pending", PaymentStatus.Pending);
        time.Advance(KeepFor - TimeSpan.FromHours(1));
        var young = await CreateAsync(records, time, "pay_young_failed", PaymentStatus.Failed);
        time.Advance(TimeSpan.FromHours(1));

        var archiver = new PaymentArchiver(records, archive, time, KeepFor, NullLogger.Instance);
        Assert.Equal(1, (await archiver.PassAsync(CancellationToken.None)).Moved);

        Assert.Null(await records.GetAsync(old.PaymentId, CancellationToken.None));
        var archived = await archive.GetAsync(old.PaymentId, CancellationToken.None);
        Assert.NotNull(archived);
        Assert.Equal(old.Order.MerchantId, archived.Owner);
        Assert.Equal(old, PaymentRecordStore.FromJson(archived.Record));
        // Unfinished (however old) and recent records stay in etcd, and are not archived.
        Assert.NotNull(await records.GetAsync(oldPending.PaymentId, CancellationToken.None));
        Assert.NotNull(await records.GetAsync(young.PaymentId, CancellationToken.None));
        Assert.Null(await archive.GetAsync(young.PaymentId, CancellationToken.None));

        // The next pass finds nothing more to do, until the young one is due too (the cursor went back to the start).
        Assert.Equal(0, (await archiver.PassAsync(CancellationToken.None)).Moved);
        time.Advance(KeepFor);
        Assert.Equal(1, (await archiver.PassAsync(CancellationToken.None)).Moved);
        Assert.Null(await records.GetAsync(young.PaymentId, CancellationToken.None));
        Assert.NotNull(await records.GetAsync(oldPending.PaymentId, CancellationToken.None));
    }

    /// <summary>Two archivers (both regions, or two replicas) over the same records: each record ends in the archive
    /// once and leaves etcd once; a record that changed since it was read stays.</summary>
    [Fact]
    public async Task ConcurrentArchivers_MoveEachRecordOnce_AndAChangedRecordStays()
    {
        var (records, archive, time) = await NewAsync();
        var ids = new List<string>();
        for (var index = 0; index < 300; index++)
        {
            ids.Add((await CreateAsync(records, time, $"pay_{index:D4}", PaymentStatus.Completed)).PaymentId);
        }

        time.Advance(KeepFor);
        var first = new PaymentArchiver(records, archive, time, KeepFor, NullLogger.Instance);
        var second = new PaymentArchiver(records, archive, time, KeepFor, NullLogger.Instance);
        var moved = await Task.WhenAll(first.PassAsync(CancellationToken.None), second.PassAsync(CancellationToken.None));

        Assert.Equal(ids.Count, moved.Sum(pass => pass.Moved));
        Assert.Empty(await records.ListAsync(null, 10, CancellationToken.None));
        Assert.Empty(await records.ListFinishedBeforeAsync(time.GetUtcNow(), 10, CancellationToken.None)); // no index key left
        foreach (var id in ids.Where((_, index) => index % 50 == 0))
        {
            Assert.NotNull(await archive.GetAsync(id, CancellationToken.None));
        }

        var changed = await CreateAsync(records, time, "pay_changed", PaymentStatus.Completed);
        var read = await records.GetAsync(changed.PaymentId, CancellationToken.None);
        Assert.True(await records.UpdateAsync(changed with { Reason = "touched" }, read!.Value.Revision, CancellationToken.None));
        Assert.Equal(0, await records.DeleteFinishedAsync([(changed, read.Value.Revision)], CancellationToken.None));
        Assert.NotNull(await records.GetAsync(changed.PaymentId, CancellationToken.None));
    }

    /// <summary>Records finished before the index existed (no index key) are found by the slow scan; an index key
    /// whose record is gone is dropped.</summary>
    [Fact]
    public async Task RecordsWithoutAnIndexKey_AreFoundByTheScan_AndStaleIndexKeysAreDropped()
    {
        var (records, archive, time) = await NewAsync();
        var prefix = EtcdClusterFixtureNewPrefix() + "payments/";
        records = new PaymentRecordStore(fixture.Connection, prefix);
        var legacy = PaymentRecord.Accepted(new PaymentOrder("pay_legacy", "merchant-archive", "debtor", "creditor", 5, "EUR", null), time.GetUtcNow())
            with { Status = PaymentStatus.Completed };
        await fixture.Connection.Client.PutAsync(prefix + "pay_legacy", PaymentRecordStore.ToJson(legacy)); // as the previous version wrote it
        var gone = await CreateAsync(records, time, "pay_gone", PaymentStatus.Completed);
        await fixture.Connection.Client.DeleteAsync(prefix + "pay_gone"); // archived elsewhere, its index key left behind
        time.Advance(KeepFor);

        var archiver = new PaymentArchiver(records, archive, time, KeepFor, NullLogger.Instance);
        var pass = await archiver.PassAsync(CancellationToken.None);

        Assert.Equal((1, false), pass);
        Assert.NotNull(await archive.GetAsync("pay_legacy", CancellationToken.None));
        Assert.Null(await records.GetAsync("pay_legacy", CancellationToken.None));
        Assert.Empty(await records.ListFinishedBeforeAsync(time.GetUtcNow(), 10, CancellationToken.None));
        Assert.Null(await archive.GetAsync(gone.PaymentId, CancellationToken.None));
    }

    private async Task<(PaymentRecordStore Records, RecordArchive Archive, FakeTimeProvider Time)> NewAsync()
    {
        var container = await CosmosSettings.EnsureContainerAsync(client, fixture.Settings().Database, $"archive-{Guid.NewGuid():N}", CancellationToken.None);
        var records = new PaymentRecordStore(fixture.Connection, EtcdClusterFixtureNewPrefix() + "payments/");
        return (records, new RecordArchive(container, fixture.Settings().ServerErrorMeansMissing), new FakeTimeProvider(DateTimeOffset.UtcNow));
    }

    private static string EtcdClusterFixtureNewPrefix() => Payments.Testing.EtcdClusterFixture.NewPrefix();

    private static async Task<PaymentRecord> CreateAsync(PaymentRecordStore records, TimeProvider time, string id, string status)
    {
        var order = new PaymentOrder(id, "merchant-archive", "debtor", "creditor", 125, "EUR", null);
        var record = PaymentRecord.Accepted(order, time.GetUtcNow()) with { Status = status };
        return await records.CreateAsync(record, CancellationToken.None);
    }
}

using Etcdserverpb;
using Microsoft.Azure.Cosmos;
using Microsoft.Extensions.Logging.Abstractions;
using Payments.Cosmos;
using Payments.Domain;
using Payments.Etcd;
using Payments.Failover.Core.Replication;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core;

namespace Payments.Failover.IntegrationTests;

/// <summary>Found in a failover review: a region whose etcd was rebuilt, or restored from a snapshot without moving its
/// revisions past the shipped head, counts from lower revisions than the head in Cosmos DB names. Its new entries sat
/// below the head: never shipped, sync writes acknowledged at once (their sequences below the head's), the archiver
/// taking them for replicated, the lag 0 — the next loss of the region lost all of it. The shipper now refuses: nothing
/// counts as shipped and the lag grows, until etcd's revisions pass the head (a restore with <c>--bump-revision</c>),
/// and then it ships again. Real etcd, the local Cosmos-compatible server.</summary>
[Collection(FailoverCollection.Name)]
public sealed class EtcdHistoryResetTests(FailoverFixture fixture) : IAsyncLifetime
{
    private static readonly TimeSpan ShipBound = TimeSpan.FromSeconds(30);

    /// <summary>How far the old etcd's head is past this one: revisions the test then writes to pass it.</summary>
    private const int HeadAhead = 40;

    private CosmosClient client = null!;
    private Container journal = null!;

    public async Task InitializeAsync()
    {
        client = fixture.Settings().CreateClient();
        journal = await CosmosSettings.EnsureContainerAsync(client, "daprpayments-tests", $"journal-{Guid.NewGuid():N}", CancellationToken.None);
    }

    public Task DisposeAsync()
    {
        client.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task AHeadBeyondEtcdsRevisions_ShipsAndAcknowledgesNothing_UntilEtcdPassesIt()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var ledger = fixture.NewLedger();
        var account = AccountId.Parse($"a-{Guid.NewGuid():N}");
        await ledger.OpenAccountAsync(account, Currency.Eur, 0, timeout.Token);
        var current = await new JournalReader(ledger).CurrentRevisionAsync(timeout.Token);
        // What the region's old etcd shipped: a head naming revisions this etcd has not reached.
        var beyond = current + HeadAhead;
        var id = JournalHead.IdFor("region-a");
        await journal.UpsertItemAsync(
            new JournalHead(id, "region-a", 3, beyond * JournalEntry.SequencePerRevision, 0, beyond, beyond), new PartitionKey(id), cancellationToken: timeout.Token);
        var shipper = new JournalShipper("region-a", journal, ledger, TimeProvider.System, NullLogger.Instance);

        var written = await DepositAsync(ledger, account, timeout.Token);
        var reset = await Assert.ThrowsAsync<EtcdHistoryResetException>(() => shipper.ShipOnceAsync(timeout.Token));
        Assert.Equal((beyond, true), (reset.HeadRevision, reset.EtcdRevision < beyond));
        Assert.Contains("--bump-revision", reset.Message, StringComparison.Ordinal);
        Assert.Equal(-1, shipper.ShippedSequence); // not the head's: nothing counts as shipped
        await Assert.ThrowsAsync<TimeoutException>(() => shipper.WaitShippedAsync(written.Entry.Sequence, TimeSpan.FromMilliseconds(300), timeout.Token));
        Assert.False(await new ShippingProgress(journal, ledger, TimeProvider.System) { ServerErrorMeansMissing = fixture.Settings().ServerErrorMeansMissing }
            .IsCaughtUpAsync("region-a", timeout.Token)); // a switchover away from this region would not call it caught up

        // etcd's revisions pass the head, as after a restore with --bump-revision: what is written now ships.
        for (var revision = current; revision <= beyond; revision++)
        {
            await fixture.Connection.Kv.PutAsync(new PutRequest { Key = EtcdBytes.Key($"/test/bump-{Guid.NewGuid():N}"), Value = EtcdBytes.Key("x") }, cancellationToken: timeout.Token);
        }

        var after = await DepositAsync(ledger, account, timeout.Token);
        Assert.True(after.Entry.Sequence / JournalEntry.SequencePerRevision > beyond);
        using var stop = new CancellationTokenSource();
        var shipping = shipper.RunAsync(stop.Token);
        try
        {
            await shipper.WaitShippedAsync(after.Entry.Sequence, ShipBound, timeout.Token);
        }
        finally
        {
            await stop.CancelAsync();
            await shipping;
        }

        var head = (await journal.ReadItemAsync<JournalHead>(id, new PartitionKey(id), cancellationToken: timeout.Token)).Resource;
        Assert.True(head.LastSequence >= after.Entry.Sequence);
    }

    private static async Task<TransferOutcome.Applied> DepositAsync(EtcdLedger ledger, AccountId account, CancellationToken cancellationToken) =>
        Assert.IsType<TransferOutcome.Applied>(await ledger.TransferAsync(
            new TransferRequest.Single(TransferId.Parse($"t-{Guid.NewGuid():N}"), AccountId.ExternalFunding(Currency.Eur), account, new Money(10, Currency.Eur)),
            cancellationToken));
}

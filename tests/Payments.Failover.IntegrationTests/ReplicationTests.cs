using Etcdserverpb;
using Microsoft.Azure.Cosmos;
using Microsoft.Extensions.Logging.Abstractions;
using Payments.Cosmos;
using Payments.Domain;
using Payments.Etcd;
using Payments.Failover.Core;
using Payments.Failover.Core.Replication;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core;
using Payments.Ledger.Core.Invariants;
using Payments.Merchants;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Client.Records;
using Payments.Testing;

namespace Payments.Failover.IntegrationTests;

/// <summary>The replicated journal through the local Cosmos-compatible server: region A's ledger shipped page by
/// page, applied by region B's replicator into its own ledger (two key prefixes of one real etcd cluster).</summary>
[Collection(FailoverCollection.Name)]
public sealed class ReplicationTests(FailoverFixture fixture) : IAsyncLifetime
{
    private static readonly TimeSpan ShipBound = TimeSpan.FromSeconds(20);
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
    public async Task StandbyAppliesTheShippedJournal_AndHoldsWhatTheSourceHolds()
    {
        var (a, b) = (fixture.NewLedger(), fixture.NewLedger());
        await WorkloadAsync(a, transfers: 300); // more than one page
        var shipper = Shipper(a);
        await ShipAllAsync(shipper);

        var replicator = new JournalReplicator(journal, b, fixture.Connection, EtcdClusterFixture.NewPrefix()) { ServerErrorMeansMissing = true };
        await replicator.DrainAsync("region-a", maxRounds: 10, CancellationToken.None);

        Assert.Equal(0, replicator.PagesBehind);
        Assert.Equal(shipper.ShippedSequence, replicator.AppliedSequence);
        Assert.Equal(0, await replicator.ReplicateOnceAsync("region-a", CancellationToken.None)); // nothing new
        await AssertSameLedgerAsync(a, b);
    }

    /// <summary>Every ledger pod ships its region's journal: three shippers at once, under load, ship every entry (the
    /// interleaving that lost entries is timing-dependent; the next test plays it in order).</summary>
    [Fact]
    public async Task ShippersOfOneRegion_ShippingAtOnce_ShipEveryEntry()
    {
        var (a, b) = (fixture.NewLedger(), fixture.NewLedger());
        var shippers = Enumerable.Range(0, 3).Select(_ => Shipper(a)).ToArray();
        using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var shipping = shippers.Select(shipper => shipper.RunAsync(stop.Token)).ToArray();
        try
        {
            await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => WorkloadAsync(a, transfers: 150)));
            var last = (await new JournalReader(a).ReadAllAsync(LedgerInvariants.MaxJournalEntries, CancellationToken.None))[^1].Sequence;
            var waited = System.Diagnostics.Stopwatch.StartNew();
            while (shippers.Any(shipper => shipper.ShippedSequence < last))
            {
                Assert.True(waited.Elapsed < TimeSpan.FromMinutes(1), $"Shipped through {string.Join(", ", shippers.Select(shipper => shipper.ShippedSequence))}, not {last}.");
                await Task.Delay(50);
            }
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(shipping);
            foreach (var shipper in shippers)
            {
                await shipper.DisposeAsync();
            }
        }

        var replicator = new JournalReplicator(journal, b, fixture.Connection, EtcdClusterFixture.NewPrefix()) { ServerErrorMeansMissing = true };
        await replicator.DrainAsync("region-a", maxRounds: 100, CancellationToken.None);
        await AssertSameLedgerAsync(a, b);
    }

    /// <summary>Rounds read etcd's change feeds, not every key of the journal and the records (a MinModRevision range,
    /// which etcd serves by reading them all); a head older than etcd's history — shipping stopped for longer than
    /// the compaction window — ships from the current keys until it is within the history again, and nothing is lost.</summary>
    [Fact]
    public async Task RoundsReadTheChangeFeeds_AndAHeadOlderThanEtcdsHistory_ShipsFromTheKeys()
    {
        var (a, b) = (fixture.NewLedger(), fixture.NewLedger());
        await WorkloadAsync(a, transfers: 30);
        await using (var shipper = Shipper(a))
        {
            await ShipAllAsync(shipper);
            Assert.Equal(0, shipper.RangeRounds);
        }

        await WorkloadAsync(a, transfers: 30); // while no shipper runs; then etcd compacts its history past them
        var now = (await fixture.Connection.Kv.RangeAsync(new Etcdserverpb.RangeRequest { Key = Google.Protobuf.ByteString.CopyFromUtf8("/"), CountOnly = true })).Header.Revision;
        await fixture.Connection.Kv.CompactAsync(new Etcdserverpb.CompactionRequest { Revision = now });
        await using var restarted = Shipper(a);
        await ShipAllAsync(restarted);

        Assert.True(restarted.RangeRounds > 0, "the compacted head was shipped from the feeds");
        // Once shipped, the head moved within the history: the next rounds read the feeds again.
        var rangeRounds = restarted.RangeRounds;
        await WorkloadAsync(a, transfers: 3);
        await ShipAllAsync(restarted);
        Assert.Equal(rangeRounds, restarted.RangeRounds);
        var replicator = new JournalReplicator(journal, b, fixture.Connection, EtcdClusterFixture.NewPrefix()) { ServerErrorMeansMissing = true };
        await replicator.DrainAsync("region-a", maxRounds: 10, CancellationToken.None);
        await AssertSameLedgerAsync(a, b);
    }

    /// <summary>A standby whose shipper stopped for longer than etcd's history while its replicator copied more than a
    /// page, then wrote on its own (promoted): the copies are left out a page at a time and its own writes ship. A page
    /// of nothing but copies moved the head to the compaction point, past its own writes in between, never shipped.</summary>
    [Fact]
    public async Task AfterCompaction_CopiesAreLeftOut_AndOwnWritesStillShip()
    {
        var (prefixA, prefixB) = (EtcdClusterFixture.NewPrefix(), EtcdClusterFixture.NewPrefix());
        var (a, b) = (fixture.NewLedger(prefix: prefixA + "ledger/"), fixture.NewLedger(prefix: prefixB + "ledger/"));
        await using (var shipperB = RecordShipper("region-b", b, prefixB))
        {
            await PutAsync(prefixB + "payments/pay_before", "b-own-early");
            await ShipAllAsync(shipperB); // B's head exists, then B's shipper stops
        }

        await WorkloadAsync(a, transfers: 2 * JournalShipper.MaxEntriesPerPage);
        for (var index = 0; index < 300; index++)
        {
            await PutAsync(prefixA + $"payments/pay_{index:D3}", "from-a");
        }

        await ShipAllAsync(RecordShipper("region-a", a, prefixA));
        await new JournalReplicator(journal, b, fixture.Connection, prefixB) { ServerErrorMeansMissing = true }.DrainAsync("region-a", maxRounds: 20, CancellationToken.None);
        await PutAsync(prefixB + "payments/pay_own", "b-own-late");
        var now = (await fixture.Connection.Kv.RangeAsync(new Etcdserverpb.RangeRequest { Key = Google.Protobuf.ByteString.CopyFromUtf8("/"), CountOnly = true })).Header.Revision;
        await fixture.Connection.Kv.CompactAsync(new Etcdserverpb.CompactionRequest { Revision = now });

        await using var restarted = RecordShipper("region-b", b, prefixB);
        await ShipAllAsync(restarted);

        Assert.True(restarted.RangeRounds > 0);
        var head = await JournalStore.TryReadAsync<JournalHead>(journal, JournalHead.IdFor("region-b"), CancellationToken.None, serverErrorMeansMissing: true);
        var shipped = new List<RecordDocument>();
        for (var number = 1; number <= head!.Pages; number++)
        {
            var page = await JournalStore.TryReadAsync<JournalPage>(journal, JournalPage.IdFor("region-b", number), CancellationToken.None, serverErrorMeansMissing: true);
            Assert.Empty(page!.Entries); // B's ledger holds only copies
            shipped.AddRange(page.Records ?? []);
        }

        Assert.Equal(["payments/pay_before", "payments/pay_own"], shipped.Select(record => record.Key).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task SyncWrite_IsAcknowledgedOnlyOnceItsEntryIsInCosmos()
    {
        var a = fixture.NewLedger();
        var shipper = Shipper(a);
        using var stop = new CancellationTokenSource();
        var shipping = shipper.RunAsync(stop.Token);
        try
        {
            var (debtor, creditor) = await OpenFundedAsync(a);
            var outcome = Assert.IsType<TransferOutcome.Applied>(await a.TransferAsync(
                new TransferRequest.Single(TransferId.Parse($"t-{Guid.NewGuid():N}"), debtor, creditor, new Money(42, Currency.Eur)), CancellationToken.None));

            await shipper.WaitShippedAsync(outcome.Entry.Sequence, ShipBound, CancellationToken.None);

            var head = (await journal.ReadItemAsync<JournalHead>(JournalHead.IdFor("region-a"), new PartitionKey(JournalHead.IdFor("region-a")))).Resource;
            Assert.True(head.LastSequence >= outcome.Entry.Sequence, "acknowledged before its entry was durable in Cosmos");
        }
        finally
        {
            await stop.CancelAsync();
            await shipping;
        }
    }

    /// <summary>The mechanism the concurrent shippers rely on, played in order: page 1 written by another shipper whose
    /// feeds were behind (it holds the first 10 entries of 20, and the head it leads to) stays as written, the head moves
    /// to what it holds, and the rest goes in page 2. Upserted, page 1 was replaced by this shipper's page of 20 — which,
    /// the other way round (the slower shipper writing last, after the faster had moved the head past its page), lost
    /// the entries only the replaced page held.</summary>
    [Fact]
    public async Task APageWrittenByAnotherShipper_StaysAsWritten_AndTheHeadMovesToWhatItHolds()
    {
        var (a, b) = (fixture.NewLedger(), fixture.NewLedger());
        await WorkloadAsync(a, transfers: 20);
        var all = await new JournalReader(a).ReadAllAsync(LedgerInvariants.MaxJournalEntries, CancellationToken.None);
        var first = all.Take(10).ToArray();
        var headAfter = new JournalHead(JournalHead.IdFor("region-a"), "region-a", 1, first[^1].Sequence, first[^1].AppliedAt.ToUnixTimeMilliseconds());
        var theirs = new JournalPage(JournalPage.IdFor("region-a", 1), "region-a", 1, first.Select(JournalEntryDocument.From).ToArray(), [], headAfter);
        await journal.CreateItemAsync(theirs, new PartitionKey(theirs.Id));

        var shipper = Shipper(a);
        await ShipAllAsync(shipper);

        var page1 = (await journal.ReadItemAsync<JournalPage>(theirs.Id, new PartitionKey(theirs.Id))).Resource;
        Assert.Equal(first.Select(entry => entry.TransferId.Value), page1.Entries.Select(entry => entry.TransferId));
        Assert.Equal(all[^1].Sequence, shipper.ShippedSequence);
        var replicator = new JournalReplicator(journal, b, fixture.Connection, EtcdClusterFixture.NewPrefix()) { ServerErrorMeansMissing = true };
        await replicator.DrainAsync("region-a", maxRounds: 10, CancellationToken.None);
        await AssertSameLedgerAsync(a, b);
    }

    /// <summary>Found in review: the standby wrote whatever key a page's record named, with the failover service's etcd
    /// rights (region/, sweeper/, replication/ among them). Pages are written by the peer's ledger into Cosmos DB: a
    /// forged one could set this region's epoch mirror (writes while the other region is active) or a sweeper flag.
    /// Only the families regions ship are applied.</summary>
    [Fact]
    public async Task RecordsOutsideTheShippedFamilies_AreNeverApplied_TheOthersAre()
    {
        var b = fixture.NewLedger();
        var prefix = EtcdClusterFixture.NewPrefix();
        static RecordDocument Record(string key, string value, long revision) => new(key, Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(value)), revision);
        var head = new JournalHead(JournalHead.IdFor("region-a"), "region-a", 1, 0, 0);
        var page = new JournalPage(JournalPage.IdFor("region-a", 1), "region-a", 1, [],
            [Record("api/owners/forged-test", "{}", 10), Record("region/active-epoch", "99", 11), Record("sweeper/takeover", "{}", 12), Record("api/", "{}", 13)], head);
        await journal.UpsertItemAsync(page, new PartitionKey(page.Id));
        await journal.UpsertItemAsync(head, new PartitionKey(head.Id));

        var replicator = new JournalReplicator(journal, b, fixture.Connection, prefix) { ServerErrorMeansMissing = true };
        await replicator.DrainAsync("region-a", maxRounds: 10, CancellationToken.None);

        var root = prefix.TrimEnd('/') + "/";
        async Task<bool> ExistsAsync(string key) =>
            (await fixture.Connection.Kv.RangeAsync(new Etcdserverpb.RangeRequest { Key = Google.Protobuf.ByteString.CopyFromUtf8(root + key) })).Count > 0;
        Assert.True(await ExistsAsync("api/owners/forged-test")); // a record of a shipped family: applied
        Assert.False(await ExistsAsync("region/active-epoch"));
        Assert.False(await ExistsAsync("sweeper/takeover"));
        Assert.False(await ExistsAsync("api/")); // the family's root itself is no record
    }

    [Fact]
    public async Task PageWrittenBeforeACrash_ButNeverCounted_IsReplaced_AndNeverApplied()
    {
        var (a, b) = (fixture.NewLedger(), fixture.NewLedger());
        await WorkloadAsync(a, transfers: 20);
        // A shipper died after writing page 1 and before moving the head: that page holds something else entirely.
        var stale = new JournalPage(JournalPage.IdFor("region-a", 1), "region-a", 1,
            [new JournalEntryDocument(1, "ghost", "Single", "ghost-debit", "ghost-credit", 1_000_000, "EUR", null, null, null, 0)]);
        await journal.UpsertItemAsync(stale, new PartitionKey(stale.Id));
        var replicator = new JournalReplicator(journal, b, fixture.Connection, EtcdClusterFixture.NewPrefix()) { ServerErrorMeansMissing = true };
        Assert.Equal(0, await replicator.ReplicateOnceAsync("region-a", CancellationToken.None)); // not counted: not read

        var shipper = Shipper(a);
        await ShipAllAsync(shipper);

        await replicator.DrainAsync("region-a", maxRounds: 10, CancellationToken.None);
        await AssertSameLedgerAsync(a, b);
        Assert.Null(await b.GetAccountAsync(AccountId.Parse("ghost-credit"), CancellationToken.None));
    }

    [Fact]
    public async Task ApiRecords_TravelWithTheJournal_TheirLatestVersionWins_AndIdempotencyRecordsStayHome()
    {
        var (prefixA, prefixB) = (EtcdClusterFixture.NewPrefix(), EtcdClusterFixture.NewPrefix());
        var a = fixture.NewLedger(prefix: prefixA + "ledger/");
        var b = fixture.NewLedger(prefix: prefixB + "ledger/");
        await PutAsync(prefixA + "api/merchant-keys/hash-1", "merchant-1");
        await PutAsync(prefixA + "api/account-owners/acct-1", "merchant-1");
        await PutAsync(prefixA + "payments/pay_1", "pending");
        await PutAsync(prefixA + "payments/pay_1", "completed"); // a later version of the same record
        await PutAsync(prefixA + "idempotency/key-1", "in-progress");
        for (var index = 0; index < 300; index++)
        {
            await PutAsync(prefixA + $"payments/pay_bulk_{index:D3}", "completed"); // more than one page of records
        }

        var shipper = RecordShipper("region-a", a, prefixA);
        await ShipAllAsync(shipper);

        await new JournalReplicator(journal, b, fixture.Connection, prefixB) { ServerErrorMeansMissing = true }.DrainAsync("region-a", maxRounds: 10, CancellationToken.None);

        Assert.Equal("merchant-1", await GetAsync(prefixB + "api/merchant-keys/hash-1"));
        Assert.Equal("merchant-1", await GetAsync(prefixB + "api/account-owners/acct-1"));
        Assert.Equal("completed", await GetAsync(prefixB + "payments/pay_1"));
        Assert.Equal("completed", await GetAsync(prefixB + "payments/pay_bulk_299"));
        Assert.Null(await GetAsync(prefixB + "idempotency/key-1"));
    }

    /// <summary>The finding: a page was bounded by its number of changes only, and 600 records of 3 KB (webhook
    /// endpoints re-shipped at a takeover come close) made one page of ~2.4 MB, over Cosmos DB's 2 MB item limit: refused
    /// for good, the same page retried for ever, every sync write unacknowledged behind it. Pages are bounded in bytes too.</summary>
    [Fact]
    public async Task LargeRecords_ShipInPagesWithinCosmosItemLimit_AndAllArrive()
    {
        const int CosmosItemLimitBytes = 2 * 1024 * 1024;
        var (prefixA, prefixB) = (EtcdClusterFixture.NewPrefix(), EtcdClusterFixture.NewPrefix());
        var a = fixture.NewLedger(prefix: prefixA + "ledger/");
        var b = fixture.NewLedger(prefix: prefixB + "ledger/");
        var large = new string('w', 3_000);
        for (var index = 0; index < 600; index++)
        {
            await PutAsync(prefixA + $"payments/pay_large_{index:D3}", large);
        }

        await ShipAllAsync(RecordShipper("region-a", a, prefixA));

        var pages = 0;
        for (var number = 0; number < MaxShipRounds; number++)
        {
            var id = JournalPage.IdFor("region-a", number);
            using var page = await journal.ReadItemStreamAsync(id, new PartitionKey(id));
            if (page.StatusCode == System.Net.HttpStatusCode.OK)
            {
                using var bytes = new MemoryStream();
                await page.Content.CopyToAsync(bytes);
                Assert.True(bytes.Length < CosmosItemLimitBytes, $"page {number} holds {bytes.Length} bytes");
                pages++;
            }
        }

        Assert.True(pages >= 2, $"{pages} page(s) held 1.8 MB of records");
        await new JournalReplicator(journal, b, fixture.Connection, prefixB) { ServerErrorMeansMissing = true }.DrainAsync("region-a", maxRounds: 10, CancellationToken.None);
        Assert.Equal(large, await GetAsync(prefixB + "payments/pay_large_599"));
    }

    /// <summary>The finding: the applier wrote unfenced, trusting that it ran only in a standby; a failover process that
    /// had not yet seen its region promoted (its reads of the region record failing) went on replicating, and the old
    /// region's late pages landed in a region that writes. The store now refuses copies while the region holds an epoch,
    /// and the pages apply once it is the standby again.</summary>
    [Fact]
    public async Task ARegionHoldingAnEpoch_TakesNoCopies_UntilItIsTheStandbyAgain()
    {
        var (prefixA, prefixB) = (EtcdClusterFixture.NewPrefix(), EtcdClusterFixture.NewPrefix());
        var a = fixture.NewLedger(prefix: prefixA + "ledger/");
        var b = fixture.NewLedger(prefix: prefixB + "ledger/");
        await WorkloadAsync(a, transfers: 6);
        await PutAsync(prefixA + "payments/pay_late", "completed");
        await ShipAllAsync(RecordShipper("region-a", a, prefixA));
        var epochKey = Payments.Etcd.Regions.RegionEpochFence.KeyFor(prefixB);
        await PutAsync(epochKey, "7"); // region B holds epoch 7: it writes
        var replicator = new JournalReplicator(journal, b, fixture.Connection, prefixB) { ServerErrorMeansMissing = true };

        await Assert.ThrowsAsync<LedgerUnavailableException>(() => replicator.DrainAsync("region-a", maxRounds: 10, CancellationToken.None));
        Assert.Empty(await new JournalReader(b).ReadAllAsync(LedgerInvariants.MaxJournalEntries, CancellationToken.None));
        Assert.Null(await GetAsync(prefixB + "payments/pay_late"));

        await fixture.Connection.Client.DeleteAsync(epochKey); // the standby again
        await replicator.DrainAsync("region-a", maxRounds: 10, CancellationToken.None);
        await AssertSameLedgerAsync(a, b);
        Assert.Equal("completed", await GetAsync(prefixB + "payments/pay_late"));
    }

    /// <summary>The same fence for a page that holds only an account's settings (an overdraft set at the source):
    /// they were copied by a compare-and-swap of their own, before the fenced checkpoint — a late page's overdraft
    /// landed in a region that writes.</summary>
    [Fact]
    public async Task ARegionHoldingAnEpoch_TakesNoAccountSettings_UntilItIsTheStandbyAgain()
    {
        var (a, b, prefixA, prefixB, shipper, replicator, debtor) = await StandbyOfAFundedAccountAsync();
        Assert.IsType<SetOverdraftOutcome.Set>(await a.SetOverdraftLimitAsync(debtor, 500, CancellationToken.None));
        await ShipAllAsync(shipper); // a page of the account's settings alone
        var epochKey = Payments.Etcd.Regions.RegionEpochFence.KeyFor(prefixB);
        await PutAsync(epochKey, "7");

        await Assert.ThrowsAsync<LedgerUnavailableException>(() => replicator.DrainAsync("region-a", maxRounds: 10, CancellationToken.None));
        Assert.Equal(0, (await b.GetAccountAsync(debtor, CancellationToken.None))!.OverdraftLimitMinor);

        await fixture.Connection.Client.DeleteAsync(epochKey);
        await replicator.DrainAsync("region-a", maxRounds: 10, CancellationToken.None);
        Assert.Equal(500, (await b.GetAccountAsync(debtor, CancellationToken.None))!.OverdraftLimitMinor);
    }

    /// <summary>Two replicators per region (the chart's): one that read the checkpoint and a page, then stalled, while the
    /// other applied that page and the next, put the older page's settings over the newer ones — an overdraft limit
    /// the source lowered back up, for good (its checkpoint compare failed after the write; a failover review). The
    /// settings compare the checkpoint the stalled one read: refused, and the newer limit stays.</summary>
    [Fact]
    public async Task AnOlderPagesSettings_FromAReplicatorThatFellBehind_NeverReplaceNewerOnes()
    {
        var (a, b, prefixA, prefixB, shipper, replicator, debtor) = await StandbyOfAFundedAccountAsync();
        var checkpointKey = prefixB + "replication/region-a/pages";
        var seenByTheStalledOne = (await fixture.Connection.Client.GetAsync(checkpointKey)).Kvs.Single().ModRevision;
        Assert.IsType<SetOverdraftOutcome.Set>(await a.SetOverdraftLimitAsync(debtor, 500, CancellationToken.None));
        var olderSettings = (await fixture.Connection.Client.GetAsync(prefixA + Payments.Etcd.EtcdOptions.AccountSettingsFamily + debtor.Value)).Kvs.Single().Value;
        await ShipAllAsync(shipper);
        Assert.IsType<SetOverdraftOutcome.Set>(await a.SetOverdraftLimitAsync(debtor, 0, CancellationToken.None));
        await ShipAllAsync(shipper);
        await replicator.DrainAsync("region-a", maxRounds: 10, CancellationToken.None); // the other replicator: both pages
        Assert.Equal(0, (await b.GetAccountAsync(debtor, CancellationToken.None))!.OverdraftLimitMinor);

        var fenceKey = Payments.Etcd.Regions.RegionEpochFence.KeyFor(prefixB);
        await Assert.ThrowsAsync<InvalidOperationException>(() =>
            b.ApplyReplicatedSettingsAsync(olderSettings, CancellationToken.None, fenceKey, (checkpointKey, seenByTheStalledOne)));
        Assert.Equal(0, (await b.GetAccountAsync(debtor, CancellationToken.None))!.OverdraftLimitMinor);

        // With the checkpoint as it is, the same call applies (the guard is what refused it).
        var current = (await fixture.Connection.Client.GetAsync(checkpointKey)).Kvs.Single().ModRevision;
        await b.ApplyReplicatedSettingsAsync(olderSettings, CancellationToken.None, fenceKey, (checkpointKey, current));
        Assert.Equal(500, (await b.GetAccountAsync(debtor, CancellationToken.None))!.OverdraftLimitMinor);
    }

    /// <summary>What the source deletes, the standby must not keep (shipping reads what is stored, so no deletion is
    /// shipped): a finished payment's in-flight marker goes with its finished record — else after a takeover every
    /// payment ever made counted against its merchant's payments in flight — and a revoked API key, expired in place,
    /// is refused on the standby too (deleted, it worked there again).</summary>
    [Fact]
    public async Task AFinishedPaymentLeavesNoMarker_AndARevokedKeyStaysRevoked_OnTheStandby()
    {
        var (prefixA, prefixB) = (EtcdClusterFixture.NewPrefix(), EtcdClusterFixture.NewPrefix());
        var (a, b) = (fixture.NewLedger(prefix: prefixA + "ledger/"), fixture.NewLedger(prefix: prefixB + "ledger/"));
        var recordsA = new PaymentRecordStore(fixture.Connection, prefixA + "payments/");
        var merchantsA = new MerchantStore(fixture.Connection, prefixA + "api/");
        var key = await merchantsA.IssueApiKeyAsync("merchant-r", CancellationToken.None);
        var keyId = (await merchantsA.AuthenticateAsync(key, CancellationToken.None))!.KeyId;
        var now = DateTimeOffset.UtcNow;
        var (finished, open) = (Order("pay_finished"), Order("pay_open"));
        await recordsA.CreateAsync(PaymentRecord.Accepted(finished, now), CancellationToken.None);
        await recordsA.CreateAsync(PaymentRecord.Accepted(open, now), CancellationToken.None);
        var shipper = RecordShipper("region-a", a, prefixA);
        var replicator = new JournalReplicator(journal, b, fixture.Connection, prefixB) { ServerErrorMeansMissing = true };
        await ShipAndApplyAsync(shipper, replicator);
        var recordsB = new PaymentRecordStore(fixture.Connection, prefixB + "payments/");
        Assert.Equal(["pay_finished", "pay_open"], await InFlightAsync(recordsB));
        Assert.NotNull(await new MerchantStore(fixture.Connection, prefixB + "api/").AuthenticateAsync(key, CancellationToken.None));

        await recordsA.RecordOutcomeAsync(finished.PaymentId, PaymentOutcome.Completed(), now, CancellationToken.None);
        Assert.Equal(KeyAdminResult.Done, await merchantsA.RevokeKeyAsync("merchant-r", keyId, CancellationToken.None));
        await ShipAndApplyAsync(shipper, replicator);

        Assert.Equal(["pay_open"], await InFlightAsync(recordsB));
        Assert.Equal(PaymentStatus.Completed, (await recordsB.GetAsync(finished.PaymentId, CancellationToken.None))!.Value.Record.Status);
        Assert.Null(await new MerchantStore(fixture.Connection, prefixA + "api/").AuthenticateAsync(key, CancellationToken.None));
        Assert.Null(await new MerchantStore(fixture.Connection, prefixB + "api/").AuthenticateAsync(key, CancellationToken.None));
    }

    /// <summary>The standby's own shipper must not ship back the records its replicator copied from the active region:
    /// a failover pod of the active region that restarts catches up from the standby's pages, and applied those copies
    /// over the records' newer values (a payment finished there pending again, a revoked key valid again). What the
    /// standby writes itself, once active, still ships.</summary>
    [Fact]
    public async Task RecordsCopiedFromThePeer_AreNotShippedBack_SoThePeerCatchingUpKeepsItsNewerValues()
    {
        var (prefixA, prefixB) = (EtcdClusterFixture.NewPrefix(), EtcdClusterFixture.NewPrefix());
        var (a, b) = (fixture.NewLedger(prefix: prefixA + "ledger/"), fixture.NewLedger(prefix: prefixB + "ledger/"));
        var (shipperA, shipperB) = (RecordShipper("region-a", a, prefixA), RecordShipper("region-b", b, prefixB));
        await WorkloadAsync(a, transfers: 20);
        await PutAsync(prefixA + "payments/pay_1", "pending");
        await ShipAllAsync(shipperA);
        await new JournalReplicator(journal, b, fixture.Connection, prefixB) { ServerErrorMeansMissing = true }.DrainAsync("region-a", maxRounds: 10, CancellationToken.None);
        Assert.Equal("pending", await GetAsync(prefixB + "payments/pay_1"));
        await AssertSameLedgerAsync(a, b);
        await ShipAllAsync(shipperB); // the standby's ledger pods ship all the time: none of it is B's
        Assert.Equal(0, (await JournalStore.TryReadAsync<JournalHead>(journal, JournalHead.IdFor("region-b"), CancellationToken.None, serverErrorMeansMissing: true))?.Pages ?? 0);

        await PutAsync(prefixA + "payments/pay_1", "completed");
        var catchUpA = new JournalReplicator(journal, a, fixture.Connection, prefixA) { ServerErrorMeansMissing = true };
        await catchUpA.DrainAsync("region-b", maxRounds: 10, CancellationToken.None);
        Assert.Equal("completed", await GetAsync(prefixA + "payments/pay_1"));

        await PutAsync(prefixB + "payments/pay_2", "written-by-b"); // B's own write (say, after a takeover)
        await ShipAllAsync(shipperB);
        Assert.Equal(1, (await JournalStore.TryReadAsync<JournalHead>(journal, JournalHead.IdFor("region-b"), CancellationToken.None, serverErrorMeansMissing: true))!.Pages);
        await catchUpA.DrainAsync("region-b", maxRounds: 10, CancellationToken.None);
        Assert.Equal("written-by-b", await GetAsync(prefixA + "payments/pay_2"));
        Assert.Equal("completed", await GetAsync(prefixA + "payments/pay_1"));
    }

    /// <summary>The journal holds transfers only, so the standby learnt no overdraft limit (after a takeover those
    /// accounts were refused what they were allowed; one lowered there kept its higher limit in the other region), no
    /// closing, and no account opened but not yet used. Accounts' settings now travel with the journal.</summary>
    [Fact]
    public async Task AccountSettings_OverdraftClosingAndUnusedAccounts_ReachTheStandby()
    {
        var (prefixA, prefixB) = (EtcdClusterFixture.NewPrefix(), EtcdClusterFixture.NewPrefix());
        var (a, b) = (fixture.NewLedger(prefix: prefixA + "ledger/"), fixture.NewLedger(prefix: prefixB + "ledger/"));
        var shipper = RecordShipper("region-a", a, prefixA, Payments.Etcd.EtcdOptions.ReplicatedRecordFamilies);
        var replicator = new JournalReplicator(journal, b, fixture.Connection, prefixB) { ServerErrorMeansMissing = true };
        var (debtor, _) = await OpenFundedAsync(a);
        var unused = AccountId.Parse($"u-{Guid.NewGuid():N}");
        await a.OpenAccountAsync(unused, Currency.Eur, 0, CancellationToken.None);
        Assert.IsType<SetOverdraftOutcome.Set>(await a.SetOverdraftLimitAsync(debtor, 500, CancellationToken.None));
        await ShipAndApplyAsync(shipper, replicator);

        Assert.Equal(500, (await b.GetAccountAsync(debtor, CancellationToken.None))!.OverdraftLimitMinor);
        Assert.NotNull(await b.GetAccountAsync(unused, CancellationToken.None));
        Assert.Equal(100_000, (await b.GetAccountAsync(debtor, CancellationToken.None))!.BalanceMinor);

        Assert.IsType<SetOverdraftOutcome.Set>(await a.SetOverdraftLimitAsync(debtor, 100, CancellationToken.None));
        Assert.IsType<CloseAccountOutcome.Closed>(await a.CloseAccountAsync(unused, CancellationToken.None));
        await ShipAndApplyAsync(shipper, replicator);

        Assert.Equal(100, (await b.GetAccountAsync(debtor, CancellationToken.None))!.OverdraftLimitMinor);
        Assert.True((await b.GetAccountAsync(unused, CancellationToken.None))!.Closed);
        await AssertSameLedgerAsync(a, b);
    }

    /// <summary>Found in review: a hold bar (a void that found no hold, written before a saga reports a payment failed)
    /// stayed in its region. After a switchover that fenced off the payment's record write, the other region resumed
    /// the payment, found no hold, decided again and settled it — and its hold, shipped back, met the bar: skipped, the
    /// two ledgers apart for good. The bar travels with the records and bars the hold in the standby too; the copy's
    /// own key is not copied (this region's expiry sweep removes the bar it applied).</summary>
    [Fact]
    public async Task AHoldBar_ReachesTheStandby_WhichRefusesTheHoldToo_AndRemovesItWhenDue()
    {
        var (prefixA, prefixB) = (EtcdClusterFixture.NewPrefix(), EtcdClusterFixture.NewPrefix());
        var a = fixture.NewLedger(prefix: prefixA + "ledger/");
        // The standby as it runs: fenced off (it holds no epoch), its own clock.
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        var standby = new EtcdLedger(fixture.Connection, prefixB + "ledger/", clock, NullLogger<EtcdLedger>.Instance, () => new Payments.Etcd.Regions.RegionEpochFence(prefixB, 1));
        var shipper = RecordShipper("region-a", a, prefixA, Payments.Etcd.EtcdOptions.ReplicatedRecordFamilies);
        var replicator = new JournalReplicator(journal, standby, fixture.Connection, prefixB) { ServerErrorMeansMissing = true };
        var (debtor, _) = await OpenFundedAsync(a);
        var payment = $"pay-{Guid.NewGuid():N}";
        var holdId = TransferId.Parse(payment + ".hold");
        var issued = DateTimeOffset.UtcNow;
        var barred = await a.TransferAsync(new TransferRequest.VoidPending(TransferId.Parse(payment + ".void"), holdId) { IssuedAt = issued }, CancellationToken.None);
        Assert.Equal(LedgerError.PendingTransferNotFound, Assert.IsType<TransferOutcome.Failed>(barred).Error.Code);

        await ShipAndApplyAsync(shipper, replicator);
        // Applied again (a replicator that died before its checkpoint moved): nothing changes.
        await standby.ApplyReplicatedBarAsync(
            Google.Protobuf.ByteString.CopyFromUtf8((await GetAsync(prefixA + Payments.Etcd.EtcdOptions.HoldBarsFamily + holdId.Value))!),
            Payments.Etcd.Regions.RegionEpochFence.KeyFor(prefixB), CancellationToken.None);

        // The standby, once it takes over (its writes unfenced here), refuses the hold the active region barred.
        var taken = fixture.NewLedger(prefix: prefixB + "ledger/");
        var hold = new TransferRequest.Pending(holdId, debtor, AccountId.InTransit(Currency.Eur), new Money(100, Currency.Eur), TimeSpan.FromMinutes(15))
        {
            IssuedAt = issued,
        };
        var refused = Assert.IsType<TransferOutcome.Failed>(await taken.TransferAsync(hold, CancellationToken.None));
        Assert.Equal(LedgerError.PendingTransferAlreadyVoided, refused.Error.Code);
        Assert.Null(await GetAsync(prefixB + Payments.Etcd.EtcdOptions.HoldBarsFamily + holdId.Value)); // applied as a bar, not copied
        Assert.Equal(0, (await taken.GetAccountAsync(debtor, CancellationToken.None))!.PendingDebitMinor);
        await AssertSameLedgerAsync(a, taken);

        // Still the standby, past the bar's time: its own expiry sweep removes the bar it applied (refused by the
        // region fence, the bars stayed for as long as the region was standby: a review).
        clock.Advance(standby.Retention.ReplayWindow + standby.Retention.MaxIssuedAhead + TimeSpan.FromMinutes(1));
        await new Payments.Ledger.Core.Expiry.HoldExpirySweeper(standby, "standby-sweeper", NullLogger<Payments.Ledger.Core.Expiry.HoldExpirySweeper>.Instance)
            .SweepOnceAsync(CancellationToken.None);
        Assert.Null(await GetAsync(prefixB + "ledger/hold/" + holdId.Value));
        Assert.Equal(0, (await fixture.Connection.Kv.RangeAsync(new Etcdserverpb.RangeRequest
        {
            Key = Payments.Etcd.EtcdBytes.Key(prefixB + "ledger/expiry/"), RangeEnd = Payments.Etcd.EtcdBytes.PrefixEnd(prefixB + "ledger/expiry/"), CountOnly = true,
        })).Count);
    }

    /// <summary>Merchants' webhook endpoints travel with the records (they did not: after a takeover no merchant was
    /// sent any event), and so do their deletions — shipping reads what is stored, so an endpoint the merchant deleted
    /// came back in the standby. A deletion travels as the removal record the API writes in its transaction; an endpoint
    /// made again under the same id after its deletion (an Idempotency-Key names it) stays.</summary>
    [Fact]
    public async Task WebhookEndpoints_AndTheirDeletions_ReachTheStandby()
    {
        var (prefixA, prefixB) = (EtcdClusterFixture.NewPrefix(), EtcdClusterFixture.NewPrefix());
        var (a, b) = (fixture.NewLedger(prefix: prefixA + "ledger/"), fixture.NewLedger(prefix: prefixB + "ledger/"));
        var shipper = RecordShipper("region-a", a, prefixA, Payments.Etcd.EtcdOptions.ReplicatedRecordFamilies);
        var replicator = new JournalReplicator(journal, b, fixture.Connection, prefixB) { ServerErrorMeansMissing = true };
        string EndpointA(string id) => prefixA + Payments.Etcd.EtcdOptions.WebhookEndpointsFamily + "merchant-w/" + id;
        string EndpointB(string id) => prefixB + Payments.Etcd.EtcdOptions.WebhookEndpointsFamily + "merchant-w/" + id;
        async Task RemoveAsync(string id)
        {
            // As the API deletes (WebhookEndpointStore.DeleteAsync): the endpoint and its removal record, one transaction.
            var now = DateTimeOffset.UtcNow;
            var removedRoot = prefixA + Payments.Etcd.EtcdOptions.WebhookRemovalsFamily;
            var remove = new Etcdserverpb.TxnRequest();
            remove.Success.Add(Payments.Etcd.EtcdBytes.Delete(EndpointA(id)));
            remove.Success.Add(Payments.Etcd.EtcdBytes.Put(
                Payments.Etcd.WebhookEndpointRemovals.Key(removedRoot, "merchant-w", id, now),
                Payments.Etcd.WebhookEndpointRemovals.Encode(new("merchant-w", id, now))));
            await fixture.Connection.Kv.TxnAsync(remove);
        }

        await PutAsync(EndpointA("we_kept"), "kept-secret-1");
        await PutAsync(EndpointA("we_doomed"), "doomed");
        await PutAsync(EndpointA("we_again"), "again-1");
        await ShipAndApplyAsync(shipper, replicator);
        Assert.Equal("kept-secret-1", await GetAsync(EndpointB("we_kept")));
        Assert.Equal("doomed", await GetAsync(EndpointB("we_doomed")));

        await PutAsync(EndpointA("we_kept"), "kept-secret-2"); // its secret rotated
        await RemoveAsync("we_doomed");
        await RemoveAsync("we_again");
        await PutAsync(EndpointA("we_again"), "again-2"); // made again, in the same page as its deletion
        await ShipAndApplyAsync(shipper, replicator);

        Assert.Equal("kept-secret-2", await GetAsync(EndpointB("we_kept")));
        Assert.Null(await GetAsync(EndpointB("we_doomed")));
        Assert.Equal("again-2", await GetAsync(EndpointB("we_again")));
    }

    /// <summary>A standby tick applies more than one round when more is waiting: at one round (16 pages) per 2 s tick,
    /// an active region shipping a few pages a second left its standby further behind every minute.</summary>
    [Fact]
    public async Task AStandbyTick_AppliesEveryWaitingPage_NotOneRoundOfThem()
    {
        var (a, b) = (fixture.NewLedger(), fixture.NewLedger());
        var shipper = Shipper(a);
        const int Pages = JournalReplicator.MaxPagesPerRound * 2 + 5;
        for (var page = 0; page < Pages; page++)
        {
            await WorkloadAsync(a, transfers: 1);
            Assert.True(await shipper.ShipOnceAsync(CancellationToken.None) > 0);
        }

        var replicator = new JournalReplicator(journal, b, fixture.Connection, EtcdClusterFixture.NewPrefix()) { ServerErrorMeansMissing = true };
        var applied = await replicator.ReplicateForAsync("region-a", TimeSpan.FromMinutes(1), TimeProvider.System, CancellationToken.None);

        Assert.True(applied >= Pages, $"{applied} pages applied of at least {Pages}");
        Assert.Equal(0, replicator.PagesBehind);
        await AssertSameLedgerAsync(a, b);
    }

    /// <summary>A switchover waits until the API's records are shipped too, not the journal alone: a payment record
    /// written after the last page keeps the region from counting as caught up.</summary>
    [Fact]
    public async Task ShippingIsCaughtUp_OnlyOnceTheRecordsAreShippedToo()
    {
        var prefixA = EtcdClusterFixture.NewPrefix();
        var a = fixture.NewLedger(prefix: prefixA + "ledger/");
        var shipper = RecordShipper("region-a", a, prefixA);
        var progress = new ShippingProgress(journal, a, TimeProvider.System) { RecordRoot = prefixA, Etcd = fixture.Connection, ServerErrorMeansMissing = true };
        await PutAsync(prefixA + "payments/pay_early", "pending");
        Assert.False(await progress.IsCaughtUpAsync("region-a", CancellationToken.None)); // nothing shipped yet
        await ShipAllAsync(shipper);

        await AssertCaughtUpAsync(progress);
        await PutAsync(prefixA + "payments/pay_late", "pending"); // after the last page: not shipped yet
        Assert.False(await progress.IsCaughtUpAsync("region-a", CancellationToken.None));
        await ShipAllAsync(shipper);

        await AssertCaughtUpAsync(progress);
    }

    /// <summary>A switchover waits for the journal too: asked of a watch from the head's journal revision (the range
    /// it replaced read every transfer key kept, five times a second).</summary>
    [Fact]
    public async Task ShippingIsCaughtUp_OnlyOnceTheJournalIsShipped_AskedOfAWatchFromTheHead()
    {
        var prefixA = EtcdClusterFixture.NewPrefix();
        var a = fixture.NewLedger(prefix: prefixA + "ledger/");
        var shipper = RecordShipper("region-a", a, prefixA, Payments.Etcd.EtcdOptions.ReplicatedRecordFamilies); // the accounts' settings too
        var progress = new ShippingProgress(journal, a, TimeProvider.System) { RecordRoot = prefixA, Etcd = fixture.Connection, ServerErrorMeansMissing = true };
        await WorkloadAsync(a, transfers: 3);
        Assert.False(await progress.IsCaughtUpAsync("region-a", CancellationToken.None));
        await ShipAllAsync(shipper);
        await AssertCaughtUpAsync(progress);

        var (debtor, creditor) = await OpenFundedAsync(a);
        await ShipAllAsync(shipper); // the new accounts' settings and funding shipped: only the next transfer is not
        await AssertCaughtUpAsync(progress);
        // Shipped from the feeds (the first round may have read the keys, etcd's history compacted by another test).
        var head = (await journal.ReadItemAsync<JournalHead>(JournalHead.IdFor("region-a"), new PartitionKey(JournalHead.IdFor("region-a")))).Resource;
        Assert.True(head.LastJournalRevision > 0, "the head names no journal revision: the watch is not what answers");
        Assert.IsType<TransferOutcome.Applied>(await a.TransferAsync(
            new TransferRequest.Single(TransferId.Parse($"t-{Guid.NewGuid():N}"), debtor, creditor, new Money(5, Currency.Eur)), CancellationToken.None));
        Assert.False(await progress.IsCaughtUpAsync("region-a", CancellationToken.None));
        await ShipAllAsync(shipper);
        await AssertCaughtUpAsync(progress);

        // A round that read the current keys (etcd's history past the head) moves the head's sequence alone: the
        // shipper reads on from the later of the two, and so does the wait (from the journal revision alone it saw
        // shipped transfers as new, and a switchover waited out its budget with everything shipped).
        var lagging = (await journal.ReadItemAsync<JournalHead>(JournalHead.IdFor("region-a"), new PartitionKey(JournalHead.IdFor("region-a")))).Resource with
        {
            LastJournalRevision = 1,
        };
        await journal.UpsertItemAsync(lagging, new PartitionKey(lagging.Id));
        await AssertCaughtUpAsync(progress);
    }

    private static PaymentOrder Order(string paymentId) => new(paymentId, "merchant-r", "debtor-1", "creditor-1", 100, "EUR", null);

    private static async Task<string[]> InFlightAsync(PaymentRecordStore records) =>
        [.. (await records.ListInFlightAsync(null, 10, CancellationToken.None)).Select(marker => marker.PaymentId).Order(StringComparer.Ordinal)];

    /// <summary>Region A's ledger with a funded account, shipped with its settings and applied by region B's replicator.</summary>
    private async Task<(EtcdLedger A, EtcdLedger B, string PrefixA, string PrefixB, JournalShipper Shipper, JournalReplicator Replicator, AccountId Debtor)>
        StandbyOfAFundedAccountAsync()
    {
        var (prefixA, prefixB) = (EtcdClusterFixture.NewPrefix(), EtcdClusterFixture.NewPrefix());
        var (a, b) = (fixture.NewLedger(prefix: prefixA + "ledger/"), fixture.NewLedger(prefix: prefixB + "ledger/"));
        var shipper = RecordShipper("region-a", a, prefixA, Payments.Etcd.EtcdOptions.ReplicatedRecordFamilies);
        var replicator = new JournalReplicator(journal, b, fixture.Connection, prefixB) { ServerErrorMeansMissing = true };
        var (debtor, _) = await OpenFundedAsync(a);
        await ShipAndApplyAsync(shipper, replicator);
        return (a, b, prefixA, prefixB, shipper, replicator, debtor);
    }

    private static async Task ShipAndApplyAsync(JournalShipper shipper, JournalReplicator replicator)
    {
        await ShipAllAsync(shipper);
        await replicator.DrainAsync("region-a", maxRounds: 10, CancellationToken.None);
    }

    /// <summary>Ships until nothing is left, at most <see cref="MaxShipRounds"/> pages.</summary>
    private static async Task ShipAllAsync(JournalShipper shipper)
    {
        for (var round = 0; await shipper.ShipOnceAsync(CancellationToken.None) > 0; round++)
        {
            Assert.True(round < MaxShipRounds, $"Still shipping after {MaxShipRounds} pages.");
        }
    }

    private const int MaxShipRounds = 100;

    /// <summary>How long a caught-up check may take to say yes: one check waits at most a second for etcd's progress
    /// answer and says "not yet" past it, which a loaded CI machine reached (what a switchover does too: it polls).</summary>
    private static readonly TimeSpan CaughtUpWait = TimeSpan.FromSeconds(30);

    /// <summary>Caught up, polled as a switchover polls (a <see cref="TimeoutException"/> past <see cref="CaughtUpWait"/>).</summary>
    private static Task AssertCaughtUpAsync(ShippingProgress progress) =>
        progress.WaitCaughtUpAsync("region-a", CaughtUpWait, CancellationToken.None);

    private Task PutAsync(string key, string value) => fixture.Connection.Client.PutAsync(key, value);

    private async Task<string?> GetAsync(string key)
    {
        var value = await fixture.Connection.Client.GetValAsync(key);
        return string.IsNullOrEmpty(value) ? null : value;
    }

    /// <summary>A region's shipper that ships the API's records (or <paramref name="families"/>) beside its journal,
    /// from the region's key prefix <paramref name="root"/>, as the ledger service's does.</summary>
    private JournalShipper RecordShipper(string region, EtcdLedger ledger, string root, IReadOnlyList<string>? families = null) =>
        new(region, journal, ledger, TimeProvider.System, NullLogger.Instance)
        {
            RecordPrefixes = families ?? ["api/", "payments/"],
            RecordRoot = root,
            Etcd = fixture.Connection,
        };

    private JournalShipper Shipper(EtcdLedger ledger) => new("region-a", journal, ledger, TimeProvider.System, NullLogger.Instance);

    private static async Task AssertSameLedgerAsync(EtcdLedger source, EtcdLedger replica)
    {
        await LedgerAssert.InvariantsHoldAsync(replica, CancellationToken.None);
        static IEnumerable<(string, long, long, long)> Balances(IReadOnlyList<Account> accounts) =>
            accounts.Select(account => (account.Id.Value, account.BalanceMinor, account.PendingDebitMinor, account.PendingCreditMinor)).OrderBy(row => row.Item1);
        Assert.Equal(Balances(await new JournalReader(source).SnapshotAccountsAsync(CancellationToken.None)),
            Balances(await new JournalReader(replica).SnapshotAccountsAsync(CancellationToken.None)));
        var sourceIds = (await new JournalReader(source).ReadAllAsync(LedgerInvariants.MaxJournalEntries, CancellationToken.None)).Select(entry => entry.TransferId.Value);
        var replicaIds = (await new JournalReader(replica).ReadAllAsync(LedgerInvariants.MaxJournalEntries, CancellationToken.None)).Select(entry => entry.TransferId.Value);
        Assert.Equal(sourceIds, replicaIds);
    }

    private static async Task WorkloadAsync(EtcdLedger ledger, int transfers)
    {
        var (debtor, creditor) = await OpenFundedAsync(ledger);
        for (var index = 0; index < transfers; index++)
        {
            var id = TransferId.Parse($"t-{Guid.NewGuid():N}");
            TransferRequest request = (index % 3) switch
            {
                0 => new TransferRequest.Single(id, debtor, creditor, new Money(3, Currency.Eur)),
                1 => new TransferRequest.Pending(id, creditor, AccountId.InTransit(Currency.Eur), new Money(2, Currency.Eur), TimeSpan.FromMinutes(15)),
                _ => new TransferRequest.Single(id, creditor, debtor, new Money(1, Currency.Eur)),
            };
            Assert.IsType<TransferOutcome.Applied>(await ledger.TransferAsync(request, CancellationToken.None));
        }
    }

    /// <summary>In the history reset test: how far the old etcd's head is past this one: revisions the test then writes to pass it.</summary>
    private const int HeadAhead = 40;

    /// <summary>Found in a failover review: a region whose etcd was rebuilt, or restored from a snapshot without moving its
    /// revisions past the shipped head, counts from lower revisions than the head in Cosmos DB names. Its new entries sat
    /// below the head: never shipped, sync writes acknowledged at once (their sequences below the head's), the archiver
    /// taking them for replicated, the lag 0 — the next loss of the region lost all of it. The shipper now refuses: nothing
    /// counts as shipped and the lag grows, until etcd's revisions pass the head (a restore with <c>--bump-revision</c>),
    /// and then it ships again. Real etcd, the local Cosmos-compatible server.</summary>
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

    private static async Task<(AccountId Debtor, AccountId Creditor)> OpenFundedAsync(EtcdLedger ledger)
    {
        var debtor = AccountId.Parse($"d-{Guid.NewGuid():N}");
        var creditor = AccountId.Parse($"c-{Guid.NewGuid():N}");
        await ledger.OpenAccountAsync(debtor, Currency.Eur, 0, CancellationToken.None);
        await ledger.OpenAccountAsync(creditor, Currency.Eur, 0, CancellationToken.None);
        Assert.IsType<TransferOutcome.Applied>(await ledger.TransferAsync(
            new TransferRequest.Single(TransferId.Parse($"fund-{debtor}"), AccountId.ExternalFunding(Currency.Eur), debtor, new Money(100_000, Currency.Eur)),
            CancellationToken.None));
        return (debtor, creditor);
    }
}

using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core;
using Payments.Ledger.Core.Invariants;
using Payments.Ledger.IntegrationTests.Infrastructure;
using Payments.Testing;

namespace Payments.Ledger.IntegrationTests;

/// <summary>The warm standby's copy: a source ledger's journal applied to another ledger gives the same accounts,
/// the same holds and the same journal — in any page size, any number of times.</summary>
[Collection(EtcdCollection.Name)]
public sealed class JournalApplierTests(EtcdClusterFixture etcd)
{
    [Theory]
    [InlineData(128, 1)]
    [InlineData(1000, 2)] // one big page, applied twice: the second pass changes nothing
    public async Task ReplicaOfTheJournal_HasTheSourcesBalancesHoldsAndEntries(int pageSize, int passes)
    {
        var source = etcd.NewLedger();
        var replica = etcd.NewLedger();
        var accounts = await RunWorkloadAsync(source, seed: pageSize);
        var journal = await new JournalReader(source).ReadAllAsync(LedgerInvariants.MaxJournalEntries, CancellationToken.None);

        var applier = new JournalApplier(replica);
        var applied = 0;
        for (var pass = 0; pass < passes; pass++)
        {
            var after = 0L;
            while (await new JournalReader(source).ReadAsync(after, pageSize, CancellationToken.None) is { Count: > 0 } page)
            {
                applied += await applier.ApplyAsync(page, CancellationToken.None);
                after = page[^1].Sequence;
            }
        }

        Assert.Equal(journal.Count, applied); // each entry once, however often it was offered
        await LedgerAssert.InvariantsHoldAsync(replica, CancellationToken.None);
        var sourceAccounts = await new JournalReader(source).SnapshotAccountsAsync(CancellationToken.None);
        var replicaAccounts = await new JournalReader(replica).SnapshotAccountsAsync(CancellationToken.None);
        Assert.Equal(
            sourceAccounts.Select(account => (account.Id, account.BalanceMinor, account.PendingDebitMinor, account.PendingCreditMinor)).OrderBy(account => account.Id.Value),
            replicaAccounts.Select(account => (account.Id, account.BalanceMinor, account.PendingDebitMinor, account.PendingCreditMinor)).OrderBy(account => account.Id.Value));
        var replicaJournal = await new JournalReader(replica).ReadAllAsync(LedgerInvariants.MaxJournalEntries, CancellationToken.None);
        Assert.Equal(journal.Select(Fields), replicaJournal.Select(Fields));

        // The holds' states came along: what the source posted or voided cannot be resolved again on the replica,
        // and what is still pending there can be (the promoted region finishes it).
        foreach (var (hold, state) in accounts.Holds)
        {
            var outcome = await replica.TransferAsync(new TransferRequest.VoidPending(TransferId.Parse($"check-{hold}"), hold), CancellationToken.None);
            Assert.Equal(state == "pending", outcome is TransferOutcome.Applied);
        }
    }

    /// <summary>An orphan of the old active region — its settlement of a hold (the creditor's credit and the post, in
    /// one transaction, with the hold itself on the saga's usual path), shipped after the new one took over and voided
    /// that hold: one it had received, one it had placed itself under the same id, or one it barred before it ever
    /// arrived — is not applied, the credit included, and is kept for the operator. Applied, it released the hold a
    /// second time (pending debits below zero) and paid the creditor of a payment this region had compensated.</summary>
    [Theory]
    [InlineData("received")]
    [InlineData("placed-here")]
    [InlineData("barred")]
    public async Task AnOrphanSettlementOfAHoldThisRegionVoided_IsNotApplied_CreditIncluded(string howTheHoldWasVoidedHere)
    {
        var source = etcd.NewLedger();
        var replica = etcd.NewLedger();
        var debtor = AccountId.Parse($"orph-{Guid.NewGuid():N}"[..20]);
        var creditor = AccountId.Parse($"orpc-{Guid.NewGuid():N}"[..20]);
        foreach (var id in new[] { debtor, creditor })
        {
            Assert.IsType<OpenAccountOutcome.Opened>(await source.OpenAccountAsync(id, Currency.Eur, 0, CancellationToken.None));
        }

        await ApplyAsync(source, new TransferRequest.Single(NewId(), AccountId.ExternalFunding(Currency.Eur), debtor, Eur(1_000)));
        var (hold, post) = (NewId(), NewId());
        var holdRequest = new TransferRequest.Pending(hold, debtor, AccountId.InTransit(Currency.Eur), Eur(400), TimeSpan.FromMinutes(15), "pay-o");
        var applier = new JournalApplier(replica);
        if (howTheHoldWasVoidedHere == "received")
        {
            await ApplyAsync(source, holdRequest);
        }

        await applier.ApplyAsync(await new JournalReader(source).ReadAllAsync(LedgerInvariants.MaxJournalEntries, CancellationToken.None), CancellationToken.None);
        if (howTheHoldWasVoidedHere == "placed-here")
        {
            Assert.IsType<TransferOutcome.Applied>(await replica.TransferAsync(holdRequest, CancellationToken.None)); // the resumed saga, same id
        }

        var voided = await replica.TransferAsync(new TransferRequest.VoidPending(NewId(), hold), CancellationToken.None); // took over, voided
        Assert.Equal(howTheHoldWasVoidedHere != "barred", voided is TransferOutcome.Applied);

        // The old region's late settlement: the creditor's credit out of in-transit and the post (and the hold, unless
        // it was shipped before), one transaction.
        TransferRequest[] batch = [new TransferRequest.Single(NewId(), AccountId.InTransit(Currency.Eur), creditor, Eur(400), "pay-o") { FundedByHold = hold }, new TransferRequest.PostPending(post, hold)];
        var settled = await source.ApplyBatchAsync(howTheHoldWasVoidedHere == "received" ? batch : [holdRequest, .. batch], CancellationToken.None);
        Assert.True(settled.Succeeded);
        await applier.ApplyAsync(await new JournalReader(source).ReadAllAsync(LedgerInvariants.MaxJournalEntries, CancellationToken.None), CancellationToken.None);

        var account = await replica.GetAccountAsync(debtor, CancellationToken.None);
        Assert.Equal((1_000, 0), (account!.BalanceMinor, account.PendingDebitMinor));
        Assert.Equal(0, (await replica.GetAccountAsync(creditor, CancellationToken.None))?.BalanceMinor ?? 0); // never credited: not even opened here
        Assert.Equal(0, (await replica.GetAccountAsync(AccountId.InTransit(Currency.Eur), CancellationToken.None))!.BalanceMinor);
        await LedgerAssert.InvariantsHoldAsync(replica, CancellationToken.None);
        var kept = await etcd.Connection.Kv.RangeAsync(new Etcdserverpb.RangeRequest { Key = Payments.Etcd.EtcdBytes.Key(replica.Keys.Conflict(post)) });
        Assert.Single(kept.Kvs); // the post that contradicts this region's void, for the operator
    }

    private static (string, TransferKind, string, string, long, string?) Fields(JournalEntry entry) =>
        (entry.TransferId.Value, entry.Kind, entry.DebitAccountId.Value, entry.CreditAccountId.Value, entry.Amount.AmountMinor, entry.PendingId?.Value);

    /// <summary>Deposits, payments, holds posted, voided and left pending, and linked batches, over a few accounts.</summary>
    private static async Task<(IReadOnlyList<AccountId> Ids, IReadOnlyList<(TransferId Hold, string State)> Holds)> RunWorkloadAsync(EtcdLedger ledger, int seed)
    {
        var random = new Random(seed);
        var ids = Enumerable.Range(0, 6).Select(index => AccountId.Parse($"acct-{Guid.NewGuid():N}"[..20] + index)).ToArray();
        foreach (var id in ids)
        {
            Assert.IsType<OpenAccountOutcome.Opened>(await ledger.OpenAccountAsync(id, Currency.Eur, 0, CancellationToken.None));
            await ApplyAsync(ledger, new TransferRequest.Single(NewId(), AccountId.ExternalFunding(Currency.Eur), id, Eur(100_000)));
        }

        var holds = new List<(TransferId, string)>();
        for (var step = 0; step < 60; step++)
        {
            var debit = ids[random.Next(ids.Length)];
            var credit = ids.Where(id => id != debit).ElementAt(random.Next(ids.Length - 1));
            var amount = Eur(random.Next(1, 500));
            switch (random.Next(4))
            {
                case 0:
                    await ApplyAsync(ledger, new TransferRequest.Single(NewId(), debit, credit, amount));
                    break;
                case 1:
                    var hold = NewId();
                    await ApplyAsync(ledger, new TransferRequest.Pending(hold, debit, AccountId.InTransit(Currency.Eur), amount, TimeSpan.FromMinutes(15)));
                    var resolution = random.Next(3);
                    if (resolution == 0)
                    {
                        await ApplyAsync(ledger, new TransferRequest.PostPending(NewId(), hold));
                    }
                    else if (resolution == 1)
                    {
                        await ApplyAsync(ledger, new TransferRequest.VoidPending(NewId(), hold));
                    }

                    holds.Add((hold, resolution switch { 0 => "posted", 1 => "voided", _ => "pending" }));
                    break;
                default:
                    // A linked batch: a hold and a credit from in-transit in one transaction (the saga's settle shape).
                    var batchHold = NewId();
                    await ApplyAsync(ledger, new TransferRequest.Pending(batchHold, debit, AccountId.InTransit(Currency.Eur), amount, TimeSpan.FromMinutes(15)));
                    var batch = await ledger.ApplyBatchAsync(
                        [new TransferRequest.Single(NewId(), AccountId.InTransit(Currency.Eur), credit, amount), new TransferRequest.PostPending(NewId(), batchHold)],
                        CancellationToken.None);
                    Assert.True(batch.Succeeded, batch.Error?.Detail);
                    holds.Add((batchHold, "posted"));
                    break;
            }
        }

        return (ids, holds);
    }

    private static async Task ApplyAsync(EtcdLedger ledger, TransferRequest request) =>
        Assert.IsType<TransferOutcome.Applied>(await ledger.TransferAsync(request, CancellationToken.None));

    private static TransferId NewId() => TransferId.Parse($"t-{Guid.NewGuid():N}");

    private static Money Eur(long minor) => new(minor, Currency.Eur);
}

using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core;
using Payments.Ledger.IntegrationTests.Infrastructure;
using Payments.Testing;

namespace Payments.Ledger.IntegrationTests;

[Collection(FaultyEtcdCollection.Name)]
public sealed class TransferRetryTests(FaultyEtcdClusterFixture etcd)
{
    public const int Transfers = 40;
    public const long AmountMinor = 100;

    [Fact]
    public async Task Transfer_IsAppliedOnce_WhenRetriedAfterClientSideTimeout()
    {
        var ledger = etcd.NewLedger();
        var (debtor, creditor) = await OpenPairAsync(ledger, fundsMinor: Transfers * AmountMinor);
        var requests = Enumerable.Range(0, Transfers)
            .Select(index => new TransferRequest.Single(TransferId.Parse($"retry-{index}"), debtor, creditor, new Money(AmountMinor, Currency.Usd)))
            .ToArray();

        // First attempts give up client-side after 0–9 ms: some never reach etcd, some commit after the caller stopped waiting.
        var timedOut = 0;
        for (var index = 0; index < requests.Length; index++)
        {
            using var impatient = new CancellationTokenSource(TimeSpan.FromMilliseconds(index % 10));
            try
            {
                await ledger.TransferAsync(requests[index], impatient.Token);
            }
            catch (OperationCanceledException)
            {
                timedOut++;
            }
        }

        // The retries, with the same ids, after the client-side timeouts.
        var outcomes = new List<TransferOutcome>();
        foreach (var request in requests)
        {
            outcomes.Add(await ledger.TransferAsync(request, CancellationToken.None));
        }

        Assert.True(timedOut > 0, "no first attempt timed out, so nothing was retried after a timeout");
        Assert.All(outcomes, outcome => Assert.IsType<TransferOutcome.Applied>(outcome));
        Assert.Equal(Transfers * AmountMinor, await LedgerAssert.BalanceAsync(ledger, creditor));
        Assert.Equal(0, await LedgerAssert.BalanceAsync(ledger, debtor));
        var report = await LedgerAssert.InvariantsHoldAsync(ledger, CancellationToken.None);
        Assert.Equal(Transfers + 1, report.Journal.Count); // the funding deposit and each transfer once
    }

    [Fact]
    public async Task Transfer_IsAppliedOnce_WhenRetriedAfterTimingOutWithoutQuorum()
    {
        var ledger = etcd.NewLedger();
        var (debtor, creditor) = await OpenPairAsync(ledger, fundsMinor: AmountMinor);
        var request = new TransferRequest.Single(TransferId.Parse("no-quorum"), debtor, creditor, new Money(AmountMinor, Currency.Usd));
        var cluster = etcd.Cluster;
        var leader = await cluster.LeaderIndexAsync(CancellationToken.None);
        var followers = Enumerable.Range(0, cluster.Members.Count).Where(index => index != leader).ToArray();

        foreach (var follower in followers)
        {
            cluster.Pause(follower);
        }

        try
        {
            using var impatient = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => ledger.TransferAsync(request, impatient.Token));
        }
        finally
        {
            foreach (var follower in followers)
            {
                cluster.Resume(follower);
            }
        }

        await cluster.WaitForLeaderAsync(CancellationToken.None);
        Assert.IsType<TransferOutcome.Applied>(await ledger.TransferAsync(request, CancellationToken.None));
        Assert.IsType<TransferOutcome.Applied>(await ledger.TransferAsync(request, CancellationToken.None));
        Assert.Equal(AmountMinor, await LedgerAssert.BalanceAsync(ledger, creditor));
        await LedgerAssert.InvariantsHoldAsync(ledger, CancellationToken.None);
    }

    internal static async Task<(AccountId Debtor, AccountId Creditor)> OpenPairAsync(EtcdLedger ledger, long fundsMinor)
    {
        var debtor = AccountId.Parse("debtor");
        var creditor = AccountId.Parse("creditor");
        Assert.IsType<OpenAccountOutcome.Opened>(await ledger.OpenAccountAsync(debtor, Currency.Usd, 0, CancellationToken.None));
        Assert.IsType<OpenAccountOutcome.Opened>(await ledger.OpenAccountAsync(creditor, Currency.Usd, 0, CancellationToken.None));
        var funding = new TransferRequest.Single(TransferId.Parse("funding"), AccountId.ExternalFunding(Currency.Usd), debtor, new Money(fundsMinor, Currency.Usd));
        Assert.IsType<TransferOutcome.Applied>(await ledger.TransferAsync(funding, CancellationToken.None));
        return (debtor, creditor);
    }
}

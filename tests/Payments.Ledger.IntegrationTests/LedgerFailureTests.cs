using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core;
using Payments.Ledger.Core.Rules;
using Payments.Ledger.IntegrationTests.Infrastructure;
using Payments.Testing;

namespace Payments.Ledger.IntegrationTests;

/// <summary>Every expected failure is a typed outcome with its stable code, and leaves the ledger unchanged.</summary>
[Collection(EtcdCollection.Name)]
public sealed class LedgerFailureTests(EtcdClusterFixture etcd)
{
    private static readonly Money Usd500 = new(500, Currency.Usd);
    private static readonly AccountId Alice = AccountId.Parse("alice");   // USD, 1,000 funded, no overdraft
    private static readonly AccountId Bob = AccountId.Parse("bob");       // USD
    private static readonly AccountId Erin = AccountId.Parse("erin");     // EUR
    private static readonly AccountId Closed = AccountId.Parse("closed"); // USD, closed
    private static readonly AccountId Ghost = AccountId.Parse("ghost");   // never opened

    public static TheoryData<string, string> Cases => new()
    {
        { LedgerError.InsufficientFunds, "single more than available" },
        { LedgerError.InsufficientFunds, "hold more than available" },
        { LedgerError.CurrencyMismatch, "EUR amount from USD account" },
        { LedgerError.CurrencyMismatch, "USD to EUR account" },
        { LedgerError.AccountNotFound, "unknown debtor" },
        { LedgerError.AccountNotFound, "unknown creditor" },
        { LedgerError.AccountClosed, "closed creditor" },
        { LedgerError.AccountClosed, "closed debtor" },
        { LedgerError.SameAccount, "same account" },
        { LedgerError.InvalidAmount, "zero amount" },
        { LedgerError.InvalidAmount, "negative amount" },
        { LedgerError.InvalidTimeout, "zero hold timeout" },
        { LedgerError.TransferIdReuse, "same id, other amount" },
        { LedgerError.TransferIdReuse, "same id, other kind" },
        { LedgerError.PendingTransferNotFound, "post unknown pending" },
        { LedgerError.PendingTransferNotFound, "post a single transfer" },
        { LedgerError.PendingTransferAlreadyPosted, "post twice" },
        { LedgerError.PendingTransferAlreadyVoided, "post after void" },
        { LedgerError.BalanceOverflow, "credit overflows" },
        { LedgerError.BalanceLimitExceeded, "deposit past a system shard's bound" },
        { LedgerError.BatchEmpty, "empty batch" },
        { LedgerError.BatchTooLarge, "batch of 26" },
        { LedgerError.BatchDuplicateId, "batch with a repeated id" },
        { LedgerError.LinkedTransferFailed, "batch whose last transfer fails" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Failure_IsTypedWithItsStableCode_AndChangesNothing(string expectedCode, string scenario)
    {
        var ledger = etcd.NewLedger();
        await ArrangeAsync(ledger);
        var before = await LedgerAssert.InvariantsHoldAsync(ledger, CancellationToken.None);

        var batch = Requests(scenario);
        var outcome = await ledger.ApplyBatchAsync(batch, CancellationToken.None);

        Assert.False(outcome.Succeeded);
        var codes = outcome.Transfers.OfType<TransferOutcome.Failed>().Select(failed => failed.Error.Code).Append(outcome.Error!.Code);
        Assert.Contains(expectedCode, codes);
        var after = await LedgerAssert.InvariantsHoldAsync(ledger, CancellationToken.None);
        Assert.Equal(before.Journal.Count, after.Journal.Count);
        Assert.Equal(
            before.Accounts.OrderBy(account => account.Id.Value).Select(account => (account.Id, account.BalanceMinor, account.PendingDebitMinor)),
            after.Accounts.OrderBy(account => account.Id.Value).Select(account => (account.Id, account.BalanceMinor, account.PendingDebitMinor)));
    }

    [Fact]
    public async Task OpenAccount_IsIdempotent_AndRefusesTheSameIdWithOtherFields()
    {
        var ledger = etcd.NewLedger();
        var first = await ledger.OpenAccountAsync(Alice, Currency.Usd, 100, CancellationToken.None);
        var again = await ledger.OpenAccountAsync(Alice, Currency.Usd, 100, CancellationToken.None);
        var other = await ledger.OpenAccountAsync(Alice, Currency.Eur, 100, CancellationToken.None);

        Assert.True(Assert.IsType<OpenAccountOutcome.Opened>(first).Created);
        Assert.False(Assert.IsType<OpenAccountOutcome.Opened>(again).Created);
        Assert.Equal(LedgerError.AccountExists, Assert.IsType<OpenAccountOutcome.Failed>(other).Error.Code);
    }

    [Fact]
    public async Task CloseAccount_WithBalance_IsRefused()
    {
        var ledger = etcd.NewLedger();
        await ArrangeAsync(ledger);
        var outcome = await ledger.CloseAccountAsync(Alice, CancellationToken.None);
        Assert.Equal(LedgerError.AccountNotEmpty, Assert.IsType<CloseAccountOutcome.Failed>(outcome).Error.Code);
    }

    [Fact]
    public async Task LinkedBatch_AppliesAllTransfersAtOnce_WhenEveryOneIsValid()
    {
        var ledger = etcd.NewLedger();
        await ArrangeAsync(ledger);
        var batch = Enumerable.Range(0, EtcdLedger.MaxBatchTransfers)
            .Select(index => (TransferRequest)new TransferRequest.Single(TransferId.Parse($"b-{index}"), Alice, Bob, new Money(10, Currency.Usd)))
            .ToArray();

        var outcome = await ledger.ApplyBatchAsync(batch, CancellationToken.None);

        Assert.True(outcome.Succeeded);
        var sequences = outcome.Transfers.Cast<TransferOutcome.Applied>().Select(applied => applied.Entry.Sequence).ToArray();
        Assert.Equal(sequences.Order(), sequences);
        Assert.Equal(EtcdLedger.MaxBatchTransfers, sequences.Distinct().Count());
        Assert.Equal(3 + 250, await LedgerAssert.BalanceAsync(ledger, Bob)); // bob held 3 after the arrangement
        await LedgerAssert.InvariantsHoldAsync(ledger, CancellationToken.None);
    }

    private static async Task ArrangeAsync(EtcdLedger ledger)
    {
        var none = CancellationToken.None;
        await ledger.OpenAccountAsync(Alice, Currency.Usd, 0, none);
        await ledger.OpenAccountAsync(Bob, Currency.Usd, 0, none);
        await ledger.OpenAccountAsync(Erin, Currency.Eur, 0, none);
        await ledger.OpenAccountAsync(Closed, Currency.Usd, 0, none);
        Assert.IsType<CloseAccountOutcome.Closed>(await ledger.CloseAccountAsync(Closed, none));
        var funding = AccountId.ExternalFunding(Currency.Usd);
        await Applied(ledger, new TransferRequest.Single(Id("fund-alice"), funding, Alice, new Money(1_000, Currency.Usd)));
        await Applied(ledger, new TransferRequest.Single(Id("fund-bob"), funding, Bob, new Money(1, Currency.Usd)));
        await Applied(ledger, new TransferRequest.Single(Id("existing"), Alice, Bob, new Money(1, Currency.Usd)));
        await Applied(ledger, new TransferRequest.Pending(Id("held"), Alice, Bob, new Money(1, Currency.Usd), TimeSpan.FromHours(1)));
        await Applied(ledger, new TransferRequest.PostPending(Id("held-post"), Id("held")));
        await Applied(ledger, new TransferRequest.Pending(Id("voided"), Alice, Bob, new Money(1, Currency.Usd), TimeSpan.FromHours(1)));
        await Applied(ledger, new TransferRequest.VoidPending(Id("voided-void"), Id("voided")));
    }

    private static TransferRequest[] Requests(string scenario)
    {
        var usd = Currency.Usd;
        return scenario switch
        {
            "single more than available" => [new TransferRequest.Single(Id("t"), Alice, Bob, new Money(5_000, usd))],
            "hold more than available" => [new TransferRequest.Pending(Id("t"), Alice, Bob, new Money(5_000, usd), TimeSpan.FromMinutes(1))],
            "EUR amount from USD account" => [new TransferRequest.Single(Id("t"), Alice, Bob, new Money(5, Currency.Eur))],
            "USD to EUR account" => [new TransferRequest.Single(Id("t"), Alice, Erin, Usd500)],
            "unknown debtor" => [new TransferRequest.Single(Id("t"), Ghost, Bob, Usd500)],
            "unknown creditor" => [new TransferRequest.Single(Id("t"), Alice, Ghost, Usd500)],
            "closed creditor" => [new TransferRequest.Single(Id("t"), Alice, Closed, Usd500)],
            "closed debtor" => [new TransferRequest.Single(Id("t"), Closed, Alice, Usd500)],
            "same account" => [new TransferRequest.Single(Id("t"), Alice, Alice, Usd500)],
            "zero amount" => [new TransferRequest.Single(Id("t"), Alice, Bob, new Money(0, usd))],
            "negative amount" => [new TransferRequest.Single(Id("t"), Alice, Bob, new Money(-5, usd))],
            "zero hold timeout" => [new TransferRequest.Pending(Id("t"), Alice, Bob, Usd500, TimeSpan.Zero)],
            "same id, other amount" => [new TransferRequest.Single(Id("existing"), Alice, Bob, new Money(2, usd))],
            "same id, other kind" => [new TransferRequest.Pending(Id("existing"), Alice, Bob, new Money(1, usd), TimeSpan.FromHours(1))],
            "post unknown pending" => [new TransferRequest.PostPending(Id("t"), Id("nothing"))],
            "post a single transfer" => [new TransferRequest.PostPending(Id("t"), Id("existing"))],
            "post twice" => [new TransferRequest.PostPending(Id("t"), Id("held"))],
            "post after void" => [new TransferRequest.PostPending(Id("t"), Id("voided"))],
            "deposit past a system shard's bound" => [new TransferRequest.Single(
                Id("t"), AccountId.ExternalFunding(usd), Alice, new Money(LedgerLimits.SystemShardMaxMagnitudeMinor + 1, usd))],
            "credit overflows" => [new TransferRequest.Single(Id("t"), AccountId.ExternalFunding(usd), Bob, new Money(long.MaxValue, usd))],
            "empty batch" => [],
            "batch of 26" => Enumerable.Range(0, EtcdLedger.MaxBatchTransfers + 1)
                .Select(index => (TransferRequest)new TransferRequest.Single(Id($"t{index}"), Alice, Bob, new Money(1, usd))).ToArray(),
            "batch with a repeated id" => [new TransferRequest.Single(Id("t"), Alice, Bob, new Money(1, usd)), new TransferRequest.Single(Id("t"), Alice, Bob, new Money(1, usd))],
            "batch whose last transfer fails" =>
            [
                new TransferRequest.Single(Id("t1"), Alice, Bob, new Money(400, usd)),
                new TransferRequest.Single(Id("t2"), Alice, Bob, new Money(400, usd)),
                new TransferRequest.Single(Id("t3"), Alice, Bob, new Money(400, usd)),
            ],
            _ => throw new ArgumentOutOfRangeException(nameof(scenario), scenario, null),
        };
    }

    private static async Task Applied(EtcdLedger ledger, TransferRequest request) =>
        Assert.IsType<TransferOutcome.Applied>(await ledger.TransferAsync(request, CancellationToken.None));

    private static TransferId Id(string value) => TransferId.Parse(value);
}

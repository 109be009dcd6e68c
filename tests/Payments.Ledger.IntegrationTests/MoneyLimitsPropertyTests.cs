using CsCheck;
using Etcdserverpb;
using Payments.Domain;
using Payments.Etcd;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core;
using Payments.Ledger.Core.Rules;
using Payments.Ledger.Core.Storage;
using Payments.Ledger.IntegrationTests.Infrastructure;
using Payments.Testing;

namespace Payments.Ledger.IntegrationTests;

/// <summary>Random sequences of deposits, payments, holds, posts, voids, in-transit credits and overdraft changes, at and
/// around the ledger's limits (64 bits, a system shard's bound), driven through the real ledger on a real etcd. After
/// every step the ledger must equal a model that applies exactly the steps the ledger applied, in 128 bits: so no step
/// threw, no refusal changed anything, nothing wrapped, and double entry holds.</summary>
[Collection(EtcdCollection.Name)]
public sealed class MoneyLimitsPropertyTests(EtcdClusterFixture etcd)
{
    /// <summary>Sequences tried (and steps in each): bounded so the test runs in seconds; CsCheck shrinks a failure.</summary>
    private const int Iterations = 12;
    private const int MaxSteps = 24;
    private const long Bound = LedgerLimits.SystemShardMaxMagnitudeMinor;

    private static readonly Currency Usd = Currency.Usd;
    private static readonly AccountId[] Customers = [AccountId.Parse("p0"), AccountId.Parse("p1"), AccountId.Parse("p2")];
    private static readonly AccountId External = AccountId.ExternalFunding(Usd);
    private static readonly AccountId InTransit = AccountId.InTransit(Usd);

    /// <summary>Every refusal a valid request may meet here; anything else (or an exception) fails the property.</summary>
    private static readonly HashSet<string> Refusals =
    [
        LedgerError.InsufficientFunds, LedgerError.BalanceOverflow, LedgerError.BalanceLimitExceeded,
        LedgerError.PendingTransferAlreadyPosted, LedgerError.PendingTransferAlreadyVoided, LedgerError.OverdraftInUse,
    ];

    private static readonly Gen<long> Amount = Gen.Frequency(
        (4, Gen.OneOf(1L, 1_000_000_000_000_000L, Bound / 2, (Bound / 2) + 1, Bound - 1, Bound, Bound + 1, long.MaxValue / 2, long.MaxValue - Bound, long.MaxValue)),
        (1, Gen.Long[1, long.MaxValue]));

    private static readonly Gen<Step[]> Steps = Gen.Select(Gen.Enum<StepKind>(), Gen.Int[0, 2], Gen.Int[0, 2], Amount, (kind, from, to, amount) => new Step(kind, from, to, amount))
        .Array[1, MaxSteps];

    [Fact]
    public Task AnySequenceAtTheLimits_NeverThrowsOrWraps_AndEveryRefusalChangesNothing() =>
        Steps.SampleAsync(RunAsync, iter: Iterations, threads: 1);

    private async Task RunAsync(Step[] steps)
    {
        var ledger = etcd.NewLedger();
        var model = new Model();
        foreach (var customer in Customers)
        {
            Assert.IsType<OpenAccountOutcome.Opened>(await ledger.OpenAccountAsync(customer, Usd, 0, CancellationToken.None));
        }

        for (var index = 0; index < steps.Length; index++)
        {
            await ApplyAsync(ledger, model, steps[index], TransferId.Parse($"s{index}"));
            await AssertLedgerIsModelAsync(ledger, model);
        }

        await AssertShardsWithinBoundAsync(ledger);
        await LedgerAssert.InvariantsHoldAsync(ledger, CancellationToken.None);
    }

    private static async Task ApplyAsync(EtcdLedger ledger, Model model, Step step, TransferId id)
    {
        var (from, to) = (Customers[step.From], Customers[step.To == step.From ? (step.To + 1) % Customers.Length : step.To]);
        var money = new Money(step.Amount, Usd);
        if (step.Kind == StepKind.SetOverdraft)
        {
            var outcome = await ledger.SetOverdraftLimitAsync(from, step.Amount, CancellationToken.None);
            var inUse = model.Available(from) + step.Amount < 0;
            if (outcome is SetOverdraftOutcome.Failed failed)
            {
                Assert.True(inUse && failed.Error.Code == LedgerError.OverdraftInUse, $"Overdraft {step.Amount} on {from} refused: {failed.Error}");
                return;
            }

            Assert.False(inUse, $"Overdraft {step.Amount} on {from} set below its use.");
            model.Overdraft[from] = step.Amount;
            return;
        }

        var open = model.Holds.Where(hold => hold.Open).ToList();
        TransferRequest request = step.Kind switch
        {
            StepKind.Deposit => new TransferRequest.Single(id, External, to, money),
            StepKind.Pay => new TransferRequest.Single(id, from, to, money),
            StepKind.CreditFromInTransit => new TransferRequest.Single(id, InTransit, to, money),
            StepKind.Post when open.Count > 0 => new TransferRequest.PostPending(id, open[step.From % open.Count].Id),
            StepKind.Void when open.Count > 0 => new TransferRequest.VoidPending(id, open[step.From % open.Count].Id),
            _ => new TransferRequest.Pending(id, from, InTransit, money, TimeSpan.FromHours(1)),
        };
        var result = await ledger.TransferAsync(request, CancellationToken.None);
        if (result is TransferOutcome.Failed refused)
        {
            Assert.Contains(refused.Error.Code, Refusals);
            if (refused.Error.Code == LedgerError.InsufficientFunds)
            {
                Assert.True(model.Available(from) - step.Amount < -model.Overdraft[from], $"{request} refused as insufficient-funds, but it was covered.");
            }

            return;
        }

        model.Apply(Assert.IsType<TransferOutcome.Applied>(result).Entry);
    }

    private static async Task AssertLedgerIsModelAsync(EtcdLedger ledger, Model model)
    {
        foreach (var id in Customers.Append(External).Append(InTransit))
        {
            var account = await ledger.GetAccountAsync(id, CancellationToken.None);
            var expected = model.Of(id);
            Assert.Equal((expected.Balance, expected.PendingDebit, expected.PendingCredit),
                ((Int128)(account?.BalanceMinor ?? 0), (Int128)(account?.PendingDebitMinor ?? 0), (Int128)(account?.PendingCreditMinor ?? 0)));
            if (!id.IsSystem)
            {
                Assert.True(model.Available(id) >= -model.Overdraft[id], $"{id} is overdrawn beyond its limit.");
            }
        }

        // Double entry, in 128 bits: the currency sums to zero and every hold placed is announced.
        Assert.Equal(0, model.Accounts.Values.Aggregate((Int128)0, (sum, balances) => sum + balances.Balance));
        Assert.Equal(
            model.Accounts.Values.Aggregate((Int128)0, (sum, balances) => sum + balances.PendingDebit),
            model.Accounts.Values.Aggregate((Int128)0, (sum, balances) => sum + balances.PendingCredit));
    }

    private static async Task AssertShardsWithinBoundAsync(EtcdLedger ledger)
    {
        foreach (var system in new[] { External, InTransit })
        {
            var prefix = ledger.Keys.SystemShardsPrefix(system);
            var range = await ledger.Store.RangeAsync(
                new RangeRequest { Key = EtcdBytes.Key(prefix), RangeEnd = EtcdBytes.PrefixEnd(prefix) }, CancellationToken.None);
            foreach (var shard in range.Kvs.Select(kv => LedgerJson.DecodeAccount(kv.Value)))
            {
                Assert.All([shard.BalanceMinor, shard.PendingDebitMinor, shard.PendingCreditMinor], amount => Assert.InRange(amount, -Bound, Bound));
            }
        }
    }

    public enum StepKind
    {
        Deposit,
        Pay,
        Hold,
        Post,
        Void,
        CreditFromInTransit,
        SetOverdraft,
    }

    public sealed record Step(StepKind Kind, int From, int To, long Amount);

    /// <summary>What the ledger should hold, in 128 bits so the model itself cannot wrap.</summary>
    private sealed class Model
    {
        public Dictionary<AccountId, (Int128 Balance, Int128 PendingDebit, Int128 PendingCredit)> Accounts { get; } = [];

        public Dictionary<AccountId, long> Overdraft { get; } = Customers.ToDictionary(id => id, _ => 0L);

        public List<(TransferId Id, bool Open)> Holds { get; } = [];

        public (Int128 Balance, Int128 PendingDebit, Int128 PendingCredit) Of(AccountId id) => Accounts.GetValueOrDefault(id);

        public Int128 Available(AccountId id) => Of(id).Balance - Of(id).PendingDebit;

        public void Apply(JournalEntry entry)
        {
            var (debit, credit) = Postings.Of(entry.Kind, entry.Amount.AmountMinor);
            Add(entry.DebitAccountId, debit);
            Add(entry.CreditAccountId, credit);
            if (entry.Kind == TransferKind.Pending)
            {
                Holds.Add((entry.TransferId, true));
            }
            else if (entry.PendingId is { } pending)
            {
                Holds[Holds.FindIndex(hold => hold.Id == pending)] = (pending, false);
            }
        }

        private void Add(AccountId id, Balances delta)
        {
            var (balance, pendingDebit, pendingCredit) = Of(id);
            var after = (balance + delta.BalanceMinor, pendingDebit + delta.PendingDebitMinor, pendingCredit + delta.PendingCreditMinor);
            Assert.All([after.Item1, after.Item2, after.Item3], amount => Assert.InRange(amount, long.MinValue, long.MaxValue));
            Accounts[id] = after;
        }
    }
}

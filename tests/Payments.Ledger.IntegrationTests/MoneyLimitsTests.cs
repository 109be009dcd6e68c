using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core;
using Payments.Ledger.Core.Rules;
using Payments.Ledger.IntegrationTests.Infrastructure;
using Payments.Testing;

namespace Payments.Ledger.IntegrationTests;

/// <summary>Issue 12, money limits, in the ledger: external funding cannot be overflowed by deposits (they are refused
/// at its bound, and it stays readable), and an account's overdraft limit is changed by one idempotent write.</summary>
[Collection(EtcdCollection.Name)]
public sealed class MoneyLimitsTests(EtcdClusterFixture etcd)
{
    /// <summary>Deposits tried at most: 64 of a shard's bound each are four times what 16 shards hold.</summary>
    private const int MaxDeposits = 64;
    private static readonly AccountId External = AccountId.ExternalFunding(Currency.Usd);

    [Fact]
    public async Task Deposits_PastExternalFundingsBound_AreRefusedCleanly_AndItStaysReadable()
    {
        var ledger = etcd.NewLedger();
        var none = CancellationToken.None;
        var deposit = new Money(LedgerLimits.SystemShardMaxMagnitudeMinor, Currency.Usd);
        Int128 applied = 0;
        var refused = 0;
        for (var index = 0; index < MaxDeposits; index++)
        {
            // One account per deposit, as an attacker with many accounts would: no customer account is near 64 bits.
            var account = AccountId.Parse($"whale-{index}");
            await ledger.OpenAccountAsync(account, Currency.Usd, 0, none);
            var outcome = await ledger.TransferAsync(new TransferRequest.Single(TransferId.Parse($"dep-{index}"), External, account, deposit), none);
            if (outcome is TransferOutcome.Failed failed)
            {
                Assert.Equal(LedgerError.BalanceLimitExceeded, failed.Error.Code);
                refused++;
            }
            else
            {
                applied += deposit.AmountMinor;
            }
        }

        Assert.True(refused > 0, "No deposit was refused: external funding took more than its 16 shards can hold.");
        var external = await ledger.GetAccountAsync(External, none);
        Assert.Equal(-applied, (Int128)external!.BalanceMinor);
        Assert.InRange(external.BalanceMinor, -LedgerLimits.SystemAccountMaxMagnitudeMinor, 0);
        await LedgerAssert.InvariantsHoldAsync(ledger, none);
    }

    [Fact]
    public async Task SetOverdraftLimit_IsOneIdempotentWrite_AndIsRefusedBelowWhatTheAccountUses()
    {
        var ledger = etcd.NewLedger();
        var none = CancellationToken.None;
        var alice = AccountId.Parse("alice");
        var bob = AccountId.Parse("bob");
        await ledger.OpenAccountAsync(alice, Currency.Usd, 0, none);
        await ledger.OpenAccountAsync(bob, Currency.Usd, 0, none);

        var set = Assert.IsType<SetOverdraftOutcome.Set>(await ledger.SetOverdraftLimitAsync(alice, 500, none));
        var again = Assert.IsType<SetOverdraftOutcome.Set>(await ledger.SetOverdraftLimitAsync(alice, 500, none));
        Assert.True(set.Changed);
        Assert.False(again.Changed);
        Assert.Equal(set.Account.Version, again.Account.Version); // nothing written the second time
        Assert.True((await ledger.TransferAsync(new TransferRequest.Single(TransferId.Parse("t1"), alice, bob, new Money(400, Currency.Usd)), none)).IsApplied);

        var below = Assert.IsType<SetOverdraftOutcome.Failed>(await ledger.SetOverdraftLimitAsync(alice, 399, none));
        Assert.Equal(LedgerError.OverdraftInUse, below.Error.Code);
        Assert.Equal(500, (await ledger.GetAccountAsync(alice, none))!.OverdraftLimitMinor);
        Assert.IsType<SetOverdraftOutcome.Set>(await ledger.SetOverdraftLimitAsync(alice, 400, none));
        Assert.Equal(LedgerError.InvalidAmount, Assert.IsType<SetOverdraftOutcome.Failed>(await ledger.SetOverdraftLimitAsync(alice, -1, none)).Error.Code);
        Assert.Equal(LedgerError.AccountNotFound, Assert.IsType<SetOverdraftOutcome.Failed>(
            await ledger.SetOverdraftLimitAsync(AccountId.Parse("ghost"), 1, none)).Error.Code);
        await LedgerAssert.InvariantsHoldAsync(ledger, none);
    }
}

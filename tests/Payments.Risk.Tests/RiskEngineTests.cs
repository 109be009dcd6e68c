using Microsoft.Extensions.Time.Testing;
using Payments.Domain;
using Payments.Risk.Contracts;
using Payments.Risk.Core;

namespace Payments.Risk.Tests;

public sealed class RiskEngineTests
{
    private static readonly AccountId Alice = AccountId.Parse("alice");
    private static readonly AccountId Bob = AccountId.Parse("bob");
    private static readonly RiskPolicy Policy = RiskPolicy.Default with
    {
        ReviewThresholdMinor = 1_000,
        RejectAboveMinor = 10_000,
        VelocityMaxCount = 3,
        VelocityMaxSumMinor = 2_500,
        VelocityWindow = TimeSpan.FromMinutes(10),
        BlockedAccounts = new HashSet<string>(["mallory"]),
    };

    private readonly FakeTimeProvider time = new(DateTimeOffset.Parse("2026-11-29T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture));

    [Theory]
    [InlineData(500, RiskDecision.Approve, null)]
    [InlineData(1_001, RiskDecision.Review, RiskAssessment.AmountAboveReviewThreshold)]
    [InlineData(10_001, RiskDecision.Reject, RiskAssessment.AmountAboveLimit)]
    public async Task Amount_IsApprovedReviewedOrRejectedByItsLimits(long amountMinor, RiskDecision decision, string? reason)
    {
        var engine = new RiskEngine(Policy, time);
        var result = await engine.AssessAsync(Input("p1", Alice, Bob, amountMinor), CancellationToken.None);
        Assert.Equal(decision, result.Decision);
        Assert.Equal(reason is null ? [] : [reason], result.Reasons);
    }

    /// <summary>A fault probe: a crashed workflow engine lost the sagas of payments parked for review; the sweeper ran
    /// them again, risk assessed each again, and counted it in its debtor's window at that moment (the first count had
    /// left the window long before), so the debtors' ordinary new payments went to review. A payment counts at its
    /// acceptance: one accepted longer ago than the window counts nothing today.
    /// <para>A review: an old payment assessed again was placed no earlier than its debtor's last entry, and judged by
    /// that place — so after one new payment of the debtor's, every old one re-assessed counted as new. Judged by its
    /// acceptance, it counts nothing in whichever order it comes.</para></summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task APaymentAssessedAgainLongAfterItsAcceptance_CountsNothingInTodaysWindow(bool aNewOneFirst)
    {
        var engine = new RiskEngine(Policy, time);
        var fresh = aNewOneFirst ? 1 : 0;
        if (aNewOneFirst)
        {
            Assert.Equal(RiskDecision.Approve, (await engine.AssessAsync(Input("new-first", Alice, Bob, 100), CancellationToken.None)).Decision);
        }

        var acceptedLongAgo = time.GetUtcNow() - Policy.VelocityWindow * 3;
        for (var index = 0; index < 5; index++)
        {
            var again = await engine.AssessAsync(Input($"old-{index}", Alice, Bob, 100) with { CreatedAt = acceptedLongAgo }, CancellationToken.None);
            Assert.Equal(RiskDecision.Approve, again.Decision);
        }

        for (var index = fresh; index < Policy.VelocityMaxCount; index++)
        {
            Assert.Equal(RiskDecision.Approve, (await engine.AssessAsync(Input($"new-{index}", Alice, Bob, 100), CancellationToken.None)).Decision);
        }

        // The window still counts today's payments: one more than the bound is reviewed.
        var over = await engine.AssessAsync(Input("new-over", Alice, Bob, 100), CancellationToken.None);
        Assert.Equal([RiskAssessment.VelocityCountExceeded], over.Reasons);
    }

    /// <summary>A currency with its own amount limits is assessed by them; the others by the general ones.</summary>
    [Theory]
    [InlineData("IDR", 5_000_000, RiskDecision.Approve)] // above the general review threshold, well under IDR's
    [InlineData("IDR", 20_000_001, RiskDecision.Review)]
    [InlineData("IDR", 900_000_001, RiskDecision.Reject)]
    [InlineData("EUR", 5_000, RiskDecision.Reject)]
    public async Task ACurrencysOwnAmountLimits_DecideItsPayments(string currency, long amountMinor, RiskDecision decision)
    {
        var engine = new RiskEngine(Policy with
        {
            VelocityMaxSumMinor = long.MaxValue / 2,
            RejectAboveMinor = 4_000,
            Currencies = new Dictionary<string, RiskAmounts> { ["IDR"] = new(20_000_000, 900_000_000, long.MaxValue / 2) },
        }, time);

        var result = await engine.AssessAsync(
            new RiskInput("p-" + currency + amountMinor, Alice, Bob, new Money(amountMinor, Currency.FromCode(currency))), CancellationToken.None);

        Assert.Equal(decision, result.Decision);
    }

    /// <summary>An account's velocity sum past <c>long.MaxValue</c> (limits configured as high as they go) is still
    /// assessed: the sum overflowed a checked long and every later assessment of the account failed.</summary>
    [Fact]
    public async Task AVelocitySumPastTheLargestLong_IsStillAssessed()
    {
        var engine = new RiskEngine(Policy with
        {
            ReviewThresholdMinor = long.MaxValue, RejectAboveMinor = long.MaxValue, VelocityMaxCount = 10, VelocityMaxSumMinor = long.MaxValue - 1,
        }, time);
        for (var index = 1; index <= 3; index++)
        {
            await engine.AssessAsync(Input($"big-{index}", Alice, Bob, long.MaxValue / 2), CancellationToken.None);
        }

        var fourth = await engine.AssessAsync(Input("big-4", Alice, Bob, long.MaxValue / 2), CancellationToken.None);
        Assert.Equal(RiskDecision.Review, fourth.Decision);
        Assert.Equal([RiskAssessment.VelocitySumExceeded], fourth.Reasons);
    }

    [Fact]
    public async Task BlockedAccounts_AreRejected_OnEitherSide()
    {
        var engine = new RiskEngine(Policy, time);
        var mallory = AccountId.Parse("mallory");
        Assert.Equal([RiskAssessment.DebtorBlocked], (await engine.AssessAsync(Input("p1", mallory, Bob, 1), CancellationToken.None)).Reasons);
        Assert.Equal([RiskAssessment.CreditorBlocked], (await engine.AssessAsync(Input("p2", Alice, mallory, 1), CancellationToken.None)).Reasons);
    }

    /// <summary>A review: blocklist entries were ledger ids, and a merchant's account has its plain id there only if that
    /// merchant opened the id first — the operator could not tell which form to write, and a plain id blocked whoever
    /// opened it first. An entry <c>{merchantId}~{accountId}</c> names the merchant's account in either form, and no
    /// other merchant's account of that id.</summary>
    [Fact]
    public async Task AMerchantsAccountIsBlocked_ByMerchantAndId_WhateverItsLedgerId_AndNoOtherMerchantsIs()
    {
        var engine = new RiskEngine(Policy with { BlockedAccounts = new HashSet<string>(["acme~mule-1"], StringComparer.Ordinal) }, time);
        var plain = AccountId.Parse("mule-1"); // acme opened it first
        var namespaced = AccountId.ParseLedger("acme~mule-1"); // another merchant opened it first

        Assert.Equal([RiskAssessment.DebtorBlocked], (await engine.AssessAsync(Input("b1", plain, Bob, 1) with { MerchantId = "acme" }, CancellationToken.None)).Reasons);
        Assert.Equal([RiskAssessment.CreditorBlocked], (await engine.AssessAsync(Input("b2", Alice, namespaced, 1) with { MerchantId = "acme" }, CancellationToken.None)).Reasons);
        Assert.Equal([RiskAssessment.CreditorBlocked], (await engine.AssessAsync(Input("b3", Alice, namespaced, 1), CancellationToken.None)).Reasons); // an older caller
        Assert.Equal(RiskDecision.Approve, (await engine.AssessAsync(Input("b4", plain, Bob, 1) with { MerchantId = "globex" }, CancellationToken.None)).Decision);
        Assert.Equal(RiskDecision.Approve, (await engine.AssessAsync(Input("b5", AccountId.ParseLedger("globex~mule-1"), Bob, 1) with { MerchantId = "globex" }, CancellationToken.None)).Decision);
    }

    [Fact]
    public async Task Velocity_SendsToReview_PastItsCount_AndForgetsOutsideTheWindow()
    {
        var engine = new RiskEngine(Policy, time);
        for (var index = 1; index <= 3; index++)
        {
            Assert.Equal(RiskDecision.Approve, (await engine.AssessAsync(Input($"p{index}", Alice, Bob, 100), CancellationToken.None)).Decision);
        }

        var fourth = await engine.AssessAsync(Input("p4", Alice, Bob, 100), CancellationToken.None);
        Assert.Equal(RiskDecision.Review, fourth.Decision);
        Assert.Contains(RiskAssessment.VelocityCountExceeded, fourth.Reasons);

        time.Advance(Policy.VelocityWindow + TimeSpan.FromSeconds(1));
        Assert.Equal(RiskDecision.Approve, (await engine.AssessAsync(Input("p5", Alice, Bob, 100), CancellationToken.None)).Decision);
    }

    /// <summary>Memory is bounded, but a flood of new accounts does not reset the window of an account near its limit:
    /// the tracked accounts used to be cleared all at once when full.</summary>
    [Fact]
    public async Task Velocity_OfAnAccountPastItsCount_SurvivesAFloodOfNewAccounts()
    {
        var engine = new RiskEngine(Policy, time, maxTrackedAccounts: 100, maxTrackedEntries: 1_000);
        for (var index = 1; index <= Policy.VelocityMaxCount; index++)
        {
            Assert.Equal(RiskDecision.Approve, (await engine.AssessAsync(Input($"a{index}", Alice, Bob, 10), CancellationToken.None)).Decision);
        }

        Assert.Equal(RiskDecision.Review, (await engine.AssessAsync(Input("a-over", Alice, Bob, 10), CancellationToken.None)).Decision);
        for (var index = 0; index < 350; index++)
        {
            time.Advance(TimeSpan.FromSeconds(1));
            var flood = await engine.AssessAsync(Input($"f{index}", AccountId.Parse($"flood-{index}"), Bob, 10), CancellationToken.None);
            Assert.Equal(RiskDecision.Approve, flood.Decision);
        }

        var again = await engine.AssessAsync(Input("a-again", Alice, Bob, 10), CancellationToken.None);
        Assert.Equal(RiskDecision.Review, again.Decision);
        Assert.Contains(RiskAssessment.VelocityCountExceeded, again.Reasons);
    }

    /// <summary>Likewise for the sum: one large payment near the sum limit is not forgotten before a flood's small ones.</summary>
    [Fact]
    public async Task Velocity_OfAnAccountNearItsSum_SurvivesAFloodOfNewAccounts()
    {
        // One payment, as many as each flooding account made: only its nearness to the sum limit sets it apart.
        var engine = new RiskEngine(Policy with { VelocityMaxSumMinor = 1_500 }, time, maxTrackedAccounts: 100, maxTrackedEntries: 1_000);
        Assert.Equal(RiskDecision.Approve, (await engine.AssessAsync(Input("big", Alice, Bob, 1_000), CancellationToken.None)).Decision);
        for (var index = 0; index < 350; index++)
        {
            time.Advance(TimeSpan.FromSeconds(1));
            await engine.AssessAsync(Input($"f{index}", AccountId.Parse($"flood-{index}"), Bob, 10), CancellationToken.None);
        }

        var over = await engine.AssessAsync(Input("big-2", Alice, Bob, 1_000), CancellationToken.None);
        Assert.Equal(RiskDecision.Review, over.Decision);
        Assert.Contains(RiskAssessment.VelocitySumExceeded, over.Reasons);
    }

    [Fact]
    public async Task Velocity_CountsTheSumToo()
    {
        var engine = new RiskEngine(Policy, time);
        await engine.AssessAsync(Input("p1", Alice, Bob, 1_000), CancellationToken.None);
        await engine.AssessAsync(Input("p2", Alice, Bob, 1_000), CancellationToken.None);
        var third = await engine.AssessAsync(Input("p3", Alice, Bob, 1_000), CancellationToken.None);
        Assert.Equal([RiskAssessment.VelocitySumExceeded], third.Reasons);
    }

    [Fact]
    public async Task SamePaymentAssessedAgain_IsCountedOnce()
    {
        var engine = new RiskEngine(Policy, time);
        for (var attempt = 0; attempt < 10; attempt++)
        {
            Assert.Equal(RiskDecision.Approve, (await engine.AssessAsync(Input("retried", Alice, Bob, 100), CancellationToken.None)).Decision);
        }
    }

    private static RiskInput Input(string paymentId, AccountId debtor, AccountId creditor, long amountMinor) =>
        new(paymentId, debtor, creditor, new Money(amountMinor, Currency.Usd));
}

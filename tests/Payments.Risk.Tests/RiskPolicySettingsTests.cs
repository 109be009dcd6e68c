using Microsoft.Extensions.Configuration;
using Payments.Risk.Contracts;
using Payments.Risk.Extensions;

namespace Payments.Risk.Tests;

/// <summary>The risk service's settings (environment variables on a cluster: the Helm chart's payments.velocity).</summary>
public sealed class RiskPolicySettingsTests
{
    private static IConfiguration Settings(params (string Key, string Value)[] values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values.Select(pair => KeyValuePair.Create(pair.Key, (string?)pair.Value))).Build();

    [Fact]
    public void Unset_TheDefaultsApply()
    {
        var policy = RiskServiceExtensions.PolicyFrom(Settings());

        Assert.Equal(RiskPolicy.Default.VelocityMaxCount, policy.VelocityMaxCount);
        Assert.Equal(RiskPolicy.Default.VelocityMaxSumMinor, policy.VelocityMaxSumMinor);
        Assert.Equal(RiskPolicy.Default.VelocityWindow, policy.VelocityWindow);
        Assert.Equal(RiskPolicy.Default.ReviewThresholdMinor, policy.ReviewThresholdMinor);
        Assert.Equal(RiskPolicy.Default.RejectAboveMinor, policy.RejectAboveMinor);
    }

    [Fact]
    public void VelocityLimits_AreConfigurable()
    {
        var policy = RiskServiceExtensions.PolicyFrom(Settings(
            ("Payments:VelocityMaxCount", "5000"), ("Payments:VelocityMaxSumMinor", "900000000"), ("Payments:VelocityWindow", "00:01:00"),
            ("Payments:ReviewThresholdMinor", "250"), ("Payments:BlockedAccounts:0", "mule-1"), ("Payments:RejectAboveMinor", "20000000000")));

        Assert.Equal(5000, policy.VelocityMaxCount);
        Assert.Equal(900_000_000, policy.VelocityMaxSumMinor);
        Assert.Equal(TimeSpan.FromMinutes(1), policy.VelocityWindow);
        Assert.Equal(250, policy.ReviewThresholdMinor);
        Assert.Equal(20_000_000_000, policy.RejectAboveMinor);
        Assert.Contains("mule-1", policy.BlockedAccounts);
    }

    /// <summary>One number of minor units for every currency sent every IDR payment (100,000 IDR is about 6 cents) to
    /// a reviewer and let JPY payments of a few hundred euros through unreviewed: each currency may have its own.</summary>
    [Fact]
    public void ACurrencysAmountLimits_AreItsOwn_AndAFieldLeftOutIsTheGeneralOne()
    {
        var policy = RiskServiceExtensions.PolicyFrom(Settings(
            ("Payments:ReviewThresholdMinor", "100000"),
            ("Payments:RiskCurrencies:IDR:ReviewThresholdMinor", "1600000000"), ("Payments:RiskCurrencies:IDR:VelocityMaxSumMinor", "80000000000"),
            ("Payments:RiskCurrencies:JPY:ReviewThresholdMinor", "150000")));

        Assert.Equal(new RiskAmounts(1_600_000_000, RiskPolicy.Default.RejectAboveMinor, 80_000_000_000), policy.AmountsFor(Payments.Domain.Currency.FromCode("IDR")));
        Assert.Equal(new RiskAmounts(150_000, RiskPolicy.Default.RejectAboveMinor, RiskPolicy.Default.VelocityMaxSumMinor), policy.AmountsFor(Payments.Domain.Currency.Jpy));
        Assert.Equal(new RiskAmounts(100_000, RiskPolicy.Default.RejectAboveMinor, RiskPolicy.Default.VelocityMaxSumMinor), policy.AmountsFor(Payments.Domain.Currency.Eur));
    }

    /// <summary>Found in review: a field left out took the general value and was checked as if set here, so a
    /// general review threshold of 0 (review everything) stopped the risk service over a setting nobody made.</summary>
    [Fact]
    public void AFieldLeftOut_IsTheGeneralOne_UncheckedHere()
    {
        var policy = RiskServiceExtensions.PolicyFrom(Settings(("Payments:ReviewThresholdMinor", "0"), ("Payments:RiskCurrencies:JPY:RejectAboveMinor", "50000000")));

        Assert.Equal(new RiskAmounts(0, 50_000_000, RiskPolicy.Default.VelocityMaxSumMinor), policy.AmountsFor(Payments.Domain.Currency.Jpy));
    }

    [Theory]
    [InlineData("Payments:RiskCurrencies:JPN:ReviewThresholdMinor", "1000")] // a country, not a currency
    [InlineData("Payments:RiskCurrencies:JPY:RejectAboveMinor", "0")]
    [InlineData("Payments:RiskCurrencies:IDR:VelocityMaxSumMinor", "-5")]
    public void ACurrencySettingThatIsNoCurrencyOrNotPositive_StopsTheStart_NamingIt(string setting, string value)
    {
        var refused = Assert.Throws<InvalidOperationException>(() => RiskServiceExtensions.PolicyFrom(Settings((setting, value))));

        Assert.Contains(setting[..setting.LastIndexOf(':')], refused.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Payments:VelocityMaxCount", "0")]
    [InlineData("Payments:VelocityMaxCount", "10000")] // a review: the window remembers 10,000 payments, so the count rule never fired
    [InlineData("Payments:BlockedAccounts:0", "mule 1")] // a review: a typo blocked nothing, unnoticed
    [InlineData("Payments:BlockedAccounts:1", "")]
    [InlineData("Payments:VelocityMaxSumMinor", "-1")]
    [InlineData("Payments:VelocityWindow", "00:00:00")]
    [InlineData("Payments:RejectAboveMinor", "0")]
    public void AVelocityOrBlocklistSettingOutOfRange_StopsTheStart_NamingIt(string setting, string value)
    {
        var refused = Assert.Throws<InvalidOperationException>(() => RiskServiceExtensions.PolicyFrom(Settings((setting, value))));

        Assert.Contains(setting.StartsWith("Payments:BlockedAccounts", StringComparison.Ordinal) ? "Payments:BlockedAccounts" : setting, refused.Message, StringComparison.Ordinal);
    }

    /// <summary>The largest count the engine can reach, and a namespaced ledger id (<c>{merchant}~{id}</c>), are taken.</summary>
    [Fact]
    public void TheLargestReachableCount_AndANamespacedLedgerId_AreTaken()
    {
        var policy = RiskServiceExtensions.PolicyFrom(Settings(("Payments:VelocityMaxCount", "9999"), ("Payments:BlockedAccounts:0", "acme~mule-1")));

        Assert.Equal(9999, policy.VelocityMaxCount);
        Assert.Contains("acme~mule-1", policy.BlockedAccounts);
    }
}

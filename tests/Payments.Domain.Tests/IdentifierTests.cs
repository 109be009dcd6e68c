namespace Payments.Domain.Tests;

public sealed class IdentifierTests
{
    [Theory]
    [InlineData("acct-1")]
    [InlineData("A.b_c:d-9")]
    public void AccountId_AcceptsKeySafeIds(string value)
    {
        Assert.True(AccountId.TryParse(value, out var id, out _));
        Assert.False(id!.IsSystem);
    }

    [Theory]
    [InlineData("")]
    [InlineData("a/b")]
    [InlineData("a b")]
    [InlineData("-leading")]
    [InlineData("@external-funding.USD")]
    [InlineData("ünïcode")]
    public void AccountId_RefusesIdsThatCouldEscapeTheirKeyOrImpersonateSystemAccounts(string value)
    {
        Assert.False(AccountId.TryParse(value, out _, out var problem));
        Assert.False(string.IsNullOrEmpty(problem));
    }

    [Fact]
    public void AccountId_RefusesOverlongIds()
    {
        Assert.True(AccountId.TryParse(new string('a', AccountId.MaxLength), out _, out _));
        Assert.False(AccountId.TryParse(new string('a', AccountId.MaxLength + 1), out _, out _));
    }

    [Fact]
    public void SystemAccounts_ArePerCurrency_AndMarkedAsSystem()
    {
        var funding = AccountId.ExternalFunding(Currency.Usd);
        Assert.True(funding.IsSystem);
        Assert.NotEqual(funding, AccountId.ExternalFunding(Currency.Eur));
        Assert.NotEqual(funding, AccountId.InTransit(Currency.Usd));
    }

    [Fact]
    public void TransferId_DerivesStableChildIds()
    {
        var payment = TransferId.Parse("pay_42");
        Assert.Equal("pay_42:hold", payment.Derive("hold").Value);
        Assert.Equal(payment.Derive("hold"), TransferId.Parse("pay_42").Derive("hold"));
    }

    [Theory]
    [InlineData("", false)]
    [InlineData("order-42/retry", true)]
    [InlineData("has space", false)]
    [InlineData("tab\t", false)]
    public void IdempotencyKey_AcceptsPrintableAsciiOnly(string value, bool valid)
    {
        Assert.Equal(valid, IdempotencyKey.TryParse(value, out _, out _));
    }

    [Fact]
    public void IdempotencyKey_AllowsUpTo255Characters()
    {
        Assert.True(IdempotencyKey.TryParse(new string('k', 255), out _, out _));
        Assert.False(IdempotencyKey.TryParse(new string('k', 256), out _, out _));
    }
}

public sealed class SystemAccountIdTests
{
    [Fact]
    public void ParseAny_AcceptsOnlyTheKnownSystemIds()
    {
        Assert.Equal(AccountId.InTransit(Currency.Eur), AccountId.ParseAny("@in-transit.EUR"));
        Assert.Equal(AccountId.ExternalFunding(Currency.Usd), AccountId.ParseAny("@external-funding.USD"));
        Assert.Equal(AccountId.Parse("alice"), AccountId.ParseAny("alice"));
        Assert.Throws<ArgumentException>(() => AccountId.ParseAny("@in-transit.XYZ"));
        Assert.Throws<ArgumentException>(() => AccountId.ParseAny("@treasury.USD"));
        Assert.Throws<ArgumentException>(() => AccountId.ParseAny("@in-transit.usd"));
    }
}

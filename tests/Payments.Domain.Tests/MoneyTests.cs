namespace Payments.Domain.Tests;

public sealed class MoneyTests
{
    [Fact]
    public void Add_OfSameCurrency_SumsMinorUnitsExactly()
    {
        var sum = new Money(1_250, Currency.Usd) + new Money(1, Currency.Usd);
        Assert.Equal(new Money(1_251, Currency.Usd), sum);
    }

    [Fact]
    public void Add_ThatOverflows_Throws_InsteadOfWrappingAround()
    {
        Assert.Throws<OverflowException>(() => new Money(long.MaxValue, Currency.Usd) + new Money(1, Currency.Usd));
        Assert.Throws<OverflowException>(() => new Money(long.MinValue, Currency.Usd) - new Money(1, Currency.Usd));
        Assert.Throws<OverflowException>(() => -new Money(long.MinValue, Currency.Usd));
    }

    [Fact]
    public void Add_OfDifferentCurrencies_Throws()
    {
        Assert.Throws<InvalidOperationException>(() => new Money(1, Currency.Usd) + new Money(1, Currency.Eur));
    }

    [Theory]
    [InlineData(1250, "USD", "12.50 USD")]
    [InlineData(-5, "EUR", "-0.05 EUR")]
    [InlineData(1250, "JPY", "1250 JPY")]
    [InlineData(1, "BHD", "0.001 BHD")]
    [InlineData(long.MinValue, "USD", "-92233720368547758.08 USD")]
    public void ToString_FormatsByTheCurrencysExponent(long amountMinor, string code, string expected)
    {
        Assert.Equal(expected, new Money(amountMinor, Currency.FromCode(code)).ToString());
    }
}

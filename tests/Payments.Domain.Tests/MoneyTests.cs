namespace Payments.Domain.Tests;

public sealed class MoneyTests
{
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

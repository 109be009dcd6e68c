namespace Payments.Domain.Tests;

public sealed class CurrencyTests
{
    [Theory]
    [InlineData("USD", 2)]
    [InlineData("JPY", 0)]
    [InlineData("KWD", 3)]
    [InlineData("CLF", 4)]
    [InlineData("VED", 2)] // in the list since 2021, beside VES
    [InlineData("XCG", 2)] // the Caribbean guilder, which replaced ANG in 2025
    public void FromCode_KnowsTheMinorUnitExponent(string code, int exponent)
    {
        Assert.Equal(exponent, Currency.FromCode(code).MinorUnitExponent);
    }

    [Theory]
    [InlineData("usd")]
    [InlineData("US")]
    [InlineData("USDX")]
    [InlineData("XXX")]
    [InlineData("")]
    [InlineData(null)]
    public void TryFromCode_RefusesLowerCaseUnknownAndMalformedCodes(string? code)
    {
        Assert.False(Currency.TryFromCode(code, out _));
    }

    [Fact]
    public void Equality_IsByCode()
    {
        Assert.Equal(Currency.FromCode("EUR"), Currency.Eur);
        Assert.NotEqual(Currency.Usd, Currency.Eur);
    }
}

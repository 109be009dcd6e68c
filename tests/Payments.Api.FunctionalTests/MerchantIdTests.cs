using Payments.Merchants;

namespace Payments.Api.FunctionalTests;

/// <summary>Merchant ids: 1–64 ASCII letters, digits, '-' or '_', starting with a letter or digit — checked without a
/// regex (its match timeout failed valid requests on a starved CPU) and without admitting a trailing newline.</summary>
public sealed class MerchantIdTests
{
    [Theory]
    [InlineData("a", true)]
    [InlineData("acme-eu_2", true)]
    [InlineData("0123456789012345678901234567890123456789012345678901234567890123", true)] // 64
    [InlineData("01234567890123456789012345678901234567890123456789012345678901234", false)] // 65
    [InlineData("", false)]
    [InlineData(null, false)]
    [InlineData("-acme", false)]
    [InlineData("_acme", false)]
    [InlineData("acme\n", false)]
    [InlineData("ac me", false)]
    [InlineData("acme.eu", false)]
    [InlineData("acmé", false)]
    [InlineData("ａcme", false)] // a full-width letter
    public void IsValidId_AdmitsExactlyTheDocumentedAlphabet(string? id, bool valid) => Assert.Equal(valid, MerchantRecord.IsValidId(id));
}

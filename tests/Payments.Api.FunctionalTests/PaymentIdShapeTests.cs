using Payments.Api.Apis;

namespace Payments.Api.FunctionalTests;

/// <summary>The finding: any id starting with "pay_" went to the Cosmos DB archive, and one holding a character Cosmos
/// refuses in an id ('#', '?', '\') came back as 503 "retry later" for a payment that cannot exist.</summary>
public sealed class PaymentIdShapeTests
{
    [Theory]
    [InlineData("pay_5232be4e12f8454ac1f85a58", true)]
    [InlineData("pay_0123456789abcdef0123456789abcdef", true)]
    [InlineData("pay_x#y", false)]
    [InlineData("pay_x?y", false)]
    [InlineData("pay_x\\y", false)]
    [InlineData("pay_", false)]
    [InlineData("dep_5232be4e12f8454ac1f85a58", false)]
    [InlineData("pay_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false)]
    public void OnlyWhatCouldBeAPaymentId_IsLookedUpInTheArchive(string id, bool shaped)
    {
        Assert.Equal(shaped, ArchivedPayments.IsPaymentIdShape(id));
    }
}

namespace Payments.Domain.Tests;

public sealed class AccountIdNamespaceTests
{
    [Fact]
    public void AMerchantsNamespacedId_ParsesBetweenServices_ButNeverAsAMerchantsOwnId()
    {
        var id = AccountId.OfMerchant("acme_1", AccountId.Parse("alice.2"));

        Assert.Equal("acme_1~alice.2", id.Value);
        Assert.True(id.IsNamespaced);
        Assert.Equal("alice.2", id.PublicId);
        Assert.Equal(id, AccountId.ParseLedger(id.Value));
        Assert.Equal(id, AccountId.ParseAny(id.Value));
        Assert.False(AccountId.TryParse(id.Value, out _, out _)); // the public API's grammar cannot spell it
        Assert.Equal("alice", AccountId.PublicIdOf("alice"));
    }

    [Theory]
    [InlineData("~alice")]
    [InlineData("acme~")]
    [InlineData("acme~bob~alice")]
    [InlineData("ac.me~alice")]
    [InlineData("acme~@in-transit.USD")]
    [InlineData("@in-transit.USD~alice")]
    public void MalformedNamespacedIds_AreRefused(string value)
    {
        Assert.False(AccountId.TryParseLedger(value, out _, out var problem));
        Assert.NotNull(problem);
    }

    [Fact]
    public void OnlyACustomerId_GetsANamespace()
    {
        Assert.Throws<ArgumentException>(() => AccountId.OfMerchant("acme", AccountId.InTransit(Currency.FromCode("USD"))));
        Assert.Throws<ArgumentException>(() => AccountId.OfMerchant("acme", AccountId.OfMerchant("other", AccountId.Parse("a"))));
        Assert.Throws<ArgumentException>(() => AccountId.OfMerchant("ac/me", AccountId.Parse("a")));
    }
}

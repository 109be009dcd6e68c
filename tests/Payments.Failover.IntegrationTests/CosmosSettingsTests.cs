using Payments.Cosmos;

namespace Payments.Failover.IntegrationTests;

/// <summary>How an app authenticates to Cosmos DB: Entra ID unless a key is configured; a key mode without a key is a
/// clear start-up error, not a request that fails later.</summary>
public sealed class CosmosSettingsTests
{
    private static readonly Uri Endpoint = new("https://daprpayments.documents.azure.com:443/");

    [Fact]
    public void WithoutAKey_TheAppUsesEntraId_AndBuildsItsClientWithoutOne()
    {
        var settings = new CosmosSettings { Endpoint = Endpoint };

        Assert.Equal(CosmosAuth.EntraId, settings.EffectiveAuth);
        using var client = settings.CreateClient(); // no request yet: the token is fetched on the first one
        Assert.Equal(Endpoint, client.Endpoint);
    }

    [Fact]
    public void AKey_MeansKeyAuth_UnlessEntraIdIsAskedFor()
    {
        Assert.Equal(CosmosAuth.Key, new CosmosSettings { Endpoint = Endpoint, Key = "a2V5" }.EffectiveAuth);
        Assert.Equal(CosmosAuth.EntraId, new CosmosSettings { Endpoint = Endpoint, Key = "a2V5", Auth = CosmosAuth.EntraId }.EffectiveAuth);
    }

    [Fact]
    public void KeyAuth_WithoutAKey_FailsAtStart_NamingTheSetting()
    {
        var settings = new CosmosSettings { Endpoint = Endpoint, Auth = CosmosAuth.Key };

        var error = Assert.Throws<InvalidOperationException>(() => settings.CreateClient());
        Assert.Contains("Cosmos:Key", error.Message, StringComparison.Ordinal);
    }
}

using Microsoft.Azure.Cosmos;
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

    /// <summary>Found in review: nothing checked the account the lease and the journal rest on. One write region and
    /// Strong consistency, or the services that decide on them refuse to start, saying what to change. (The local
    /// server reports Session and cannot be set otherwise; it is held to Session, and every failover test reads its
    /// account through this check.)</summary>
    [Theory]
    [InlineData(ConsistencyLevel.Strong, 1, null)]
    [InlineData(ConsistencyLevel.Session, 1, "default consistency is Session")]
    [InlineData(ConsistencyLevel.BoundedStaleness, 1, "default consistency is BoundedStaleness")]
    [InlineData(ConsistencyLevel.Strong, 2, "2 write regions")]
    [InlineData(ConsistencyLevel.Strong, 0, "no write region")]
    public void AnAccount_MustHaveOneWriteRegion_AndStrongConsistency(ConsistencyLevel consistency, int writeRegions, string? refused)
    {
        var problem = new CosmosSettings { Endpoint = Endpoint }.AccountProblem(consistency, writeRegions);

        if (refused is null)
        {
            Assert.Null(problem);
        }
        else
        {
            Assert.Contains(refused, problem, StringComparison.Ordinal);
            Assert.Contains("docs/deploy.md", problem, StringComparison.Ordinal);
        }

        Assert.Null(new CosmosSettings { Endpoint = Endpoint, AcceptAnyServerCertificate = true }.AccountProblem(ConsistencyLevel.Session, 1));
    }

    /// <summary>An audit: Cosmos DB's per-request timeout was taken as given, a negative one being none at all.</summary>
    [Theory]
    [InlineData("-00:00:01")]
    [InlineData("00:00:00")]
    [InlineData("00:00:05.001")]
    public void ARequestTimeoutOutsideItsBounds_IsRefused(string timeout)
    {
        var settings = new Payments.Cosmos.CosmosSettings { Endpoint = new Uri("https://localhost:8081"), RequestTimeout = TimeSpan.Parse(timeout, System.Globalization.CultureInfo.InvariantCulture) };

        Assert.Contains("Cosmos:RequestTimeout", Assert.Throws<InvalidOperationException>(() => settings.CreateClient()).Message, StringComparison.Ordinal);
    }
}

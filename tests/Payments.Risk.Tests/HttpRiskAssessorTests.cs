using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Payments.Domain;
using Payments.Risk.Client;
using Payments.Risk.Contracts;

namespace Payments.Risk.Tests;

/// <summary>The saga's risk client against a real HTTP server that answers as given: what it takes as a decision.</summary>
public sealed class HttpRiskAssessorTests
{
    private static readonly RiskInput Input = new("pay-1", AccountId.Parse("alice"), AccountId.Parse("bob"), new Money(100, Currency.Eur));

    /// <summary>A review: an answer without its decision (a proxy's 200, another version's body) was read as Approve,
    /// the enum's zero — a payment approved by no rule. It is a fault now (the activity is retried), as is a decision
    /// no version defines, or reasons left out.</summary>
    [Theory]
    [InlineData("""{"reasons":[]}""")]
    [InlineData("""{}""")]
    [InlineData("""{"decision":7,"reasons":[]}""")]
    [InlineData("""{"decision":0}""")]
    [InlineData("""{"decision":0,"reasons":[null]}""")]
    [InlineData("""null""")]
    public async Task AnAnswerWithoutAValidDecision_IsAFault_NotAnApproval(string body)
    {
        await using var server = await ServeAsync(body);
        using var http = new HttpClient { BaseAddress = server.Address };

        await Assert.ThrowsAsync<InvalidDataException>(() => new HttpRiskAssessor(http).AssessAsync(Input, CancellationToken.None));
    }

    [Theory]
    [InlineData("""{"decision":0,"reasons":[]}""", RiskDecision.Approve, new string[0])]
    [InlineData("""{"decision":1,"reasons":["velocity-count-exceeded"]}""", RiskDecision.Review, new[] { "velocity-count-exceeded" })]
    [InlineData("""{"decision":2,"reasons":["debtor-blocked"]}""", RiskDecision.Reject, new[] { "debtor-blocked" })]
    public async Task AValidAnswer_IsTakenAsSent(string body, RiskDecision decision, string[] reasons)
    {
        await using var server = await ServeAsync(body);
        using var http = new HttpClient { BaseAddress = server.Address };

        var assessment = await new HttpRiskAssessor(http).AssessAsync(Input, CancellationToken.None);

        Assert.Equal(decision, assessment.Decision);
        Assert.Equal(reasons, assessment.Reasons);
    }

    /// <summary>The merchant goes with the request (a blocklist entry names the merchant's account), except for a
    /// merchant whose id predates the id check, which the risk service would refuse: its payments keep being assessed.</summary>
    [Theory]
    [InlineData("acme", "acme")]
    [InlineData("legacy.merchant", null)]
    [InlineData(null, null)]
    public async Task TheMerchant_IsSent_WhenItIsAMerchantId(string? merchantId, string? sent)
    {
        var received = new List<RiskRequestWire>();
        await using var server = await ServeAsync("""{"decision":0,"reasons":[]}""", received);
        using var http = new HttpClient { BaseAddress = server.Address };

        await new HttpRiskAssessor(http).AssessAsync(Input with { MerchantId = merchantId }, CancellationToken.None);

        Assert.Equal(sent, Assert.Single(received).MerchantId);
    }

    /// <summary>A real Kestrel server on a free loopback port answering <paramref name="body"/> to an assessment
    /// (each request's body kept in <paramref name="received"/> when given).</summary>
    private static async Task<Server> ServeAsync(string body, List<RiskRequestWire>? received = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        app.MapPost("/" + RiskRoutes.Assess, (RiskRequestWire request) =>
        {
            received?.Add(request);
            return Results.Text(body, "application/json");
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        return new Server(app, new Uri(address + "/"));
    }

    private sealed record Server(WebApplication App, Uri Address) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync() => await App.DisposeAsync();
    }
}

using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Payments.ServiceDefaults.Security;

namespace Payments.Api.FunctionalTests;

/// <summary>Found in review: the operator's token (chosen by the operator, at least 32 characters) could be guessed
/// without limit by anything that reaches an admin API. Past its budget of refused tokens an address's wrong tokens
/// are answered late and 429; the right token is always let through (a second review: refusing it let anyone behind
/// the operator's address lock the operators out), and the budget comes back after the window. The admin filter
/// itself, on a request as Kestrel hands it over.</summary>
public sealed class OperatorFailureBudgetTests
{
    private const string Token = "operator-token-of-at-least-32-characters";

    [Fact]
    public async Task PastItsBudgetOfWrongTokens_AnAddressIsAnsweredLate_AndTheRightTokenStillPasses()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-12-07T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var filter = new OperatorAuthentication(NullLogger<OperatorAuthentication>.Instance, new OperatorCredential(Token, null), new OperatorFailureBudget(time));
        var guesser = IPAddress.Parse("10.1.2.3");

        for (var guess = 0; guess < OperatorFailureBudget.MaxFailures; guess++)
        {
            Assert.Equal(StatusCodes.Status401Unauthorized, await StatusAsync(filter, guesser, $"guess-{guess}"));
        }

        foreach (var same in new[] { guesser, IPAddress.Parse("::ffff:10.1.2.3") }) // IPv4 and its mapped form: one address
        {
            var late = StatusAsync(filter, same, "one-more-guess");
            Assert.False(late.IsCompleted, "a wrong token past the budget was answered at once");
            time.Advance(OperatorFailureBudget.RefusalDelay);
            Assert.Equal(StatusCodes.Status429TooManyRequests, await late);
        }

        Assert.Equal(StatusCodes.Status200OK, await StatusAsync(filter, guesser, Token)); // never held back
        Assert.Equal(StatusCodes.Status401Unauthorized, await StatusAsync(filter, IPAddress.Parse("10.1.2.4"), "a-wrong-one"));

        time.Advance(OperatorFailureBudget.Window);
        Assert.Equal(StatusCodes.Status401Unauthorized, await StatusAsync(filter, guesser, "after-the-window"));
    }

    private static async Task<int> StatusAsync(OperatorAuthentication filter, IPAddress from, string token)
    {
        var http = new DefaultHttpContext { RequestServices = new EmptyServices() };
        http.Connection.RemoteIpAddress = from;
        http.Request.Path = "/admin/v1/merchants";
        http.Request.Headers.Authorization = "Bearer " + token;
        var result = await filter.InvokeAsync(EndpointFilterInvocationContext.Create(http), _ => ValueTask.FromResult<object?>(Results.Ok()));
        return Assert.IsAssignableFrom<IStatusCodeHttpResult>(result).StatusCode ?? StatusCodes.Status200OK;
    }

    /// <summary>The filter asks for no service; a request needs a provider all the same.</summary>
    private sealed class EmptyServices : IServiceProvider
    {
        public object? GetService(Type serviceType) => null;
    }
}

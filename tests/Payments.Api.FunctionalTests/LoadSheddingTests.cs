using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Payments.Domain;

namespace Payments.Api.FunctionalTests;

/// <summary>A replica refuses requests past its bound of requests in flight at once, cheaply and clearly, instead of
/// piling them up behind its dependencies (<c>RequestsInFlight</c>).</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class LoadSheddingTests(ApiSystemFixture system)
{
    /// <summary>The finding: each key's rate and each merchant's payments were bounded, but not what many keys add up
    /// to: requests queued in the replica without bound. With its bound (1 here) held by a request whose body has not
    /// arrived, the next is 503 <c>service-unavailable</c> with Retry-After; health probes still answer; once the held
    /// request ends the replica serves again.</summary>
    [Fact]
    public async Task PastItsBoundOfRequestsInFlight_AReplicaAnswers503WithRetryAfter_AndServesAgainAfter()
    {
        await using var replica = system.StartReplica(web => web.UseSetting("Payments:MaxRequestsInFlight", "1"));
        var key = await system.Store.IssueApiKeyAsync($"merchant-{Guid.NewGuid():N}"[..20], CancellationToken.None,
            Payments.Merchants.ApiScopes.PaymentsRead, Payments.Merchants.ApiScopes.AccountsWrite);
        using var client = new HttpClient { BaseAddress = replica.ClientOptions.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        // Written by hand: its headers are on the wire for sure, its body's last byte never until the test sends it.
        var baseAddress = replica.ClientOptions.BaseAddress;
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(baseAddress.Host, baseAddress.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"POST /v1/accounts HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\n"
            + $"Idempotency-Key: {Guid.NewGuid()}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{"));
        await stream.FlushAsync();

        // The held request takes the slot once its headers are in: wait (bounded) for it, so that no request of the
        // test's takes the slot first and has the held one refused.
        var slots = replica.Services.GetRequiredService<Payments.Api.Limits.RequestsInFlight>();
        var waited = Stopwatch.StartNew();
        while (slots.Count == 0 && waited.Elapsed < TimeSpan.FromSeconds(20))
        {
            await Task.Delay(TimeSpan.FromMilliseconds(10));
        }

        Assert.Equal(1, slots.Count);
        using (var refused = await client.GetAsync("/v1/events"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.Equal(ProblemTypes.ServiceUnavailable, (await refused.JsonAsync()).GetProperty("type").GetString());
            Assert.Equal(TimeSpan.FromSeconds(1), refused.Headers.RetryAfter?.Delta);
        }

        using (var probe = await client.GetAsync("/healthz"))
        {
            Assert.Equal(HttpStatusCode.OK, probe.StatusCode);
        }

        await stream.WriteAsync("}"u8.ToArray());
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var answered = await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.StartsWith("HTTP/1.1 400", answered, StringComparison.Ordinal); // "{}" opens no account: its own problem, not the bound's

        // The slot is given back just after the held answer is sent: wait (bounded) for it.
        waited.Restart();
        while (slots.Count > 0 && waited.Elapsed < TimeSpan.FromSeconds(20))
        {
            await Task.Delay(TimeSpan.FromMilliseconds(10));
        }

        using var again = await client.GetAsync("/v1/events");
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
    }
}

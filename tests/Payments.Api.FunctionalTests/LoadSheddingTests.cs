using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Payments.Domain;
using Payments.Merchants;

namespace Payments.Api.FunctionalTests;

/// <summary>A replica refuses requests past its bound of requests in flight at once, and one merchant's past its share
/// of it, cheaply and clearly, instead of piling them up behind its dependencies (<c>RequestsInFlight</c>).</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class LoadSheddingTests(ApiSystemFixture system)
{
    /// <summary>The finding: each key's rate and each merchant's payments were bounded, but not what many keys add up
    /// to: requests queued in the replica without bound. With a bound of 2 (a merchant's share: 1), held by requests
    /// whose bodies have not arrived: the holder's next request is 503 (its share), another merchant's goes through
    /// while the bound is not reached and is 503 once it is, with Retry-After; health probes still answer; once the
    /// held requests end the replica serves again. (A review found that a single bound let one merchant's slow requests
    /// lock out every other merchant.)</summary>
    [Fact]
    public async Task PastItsBound_AReplicaAnswers503WithRetryAfter_AndOneMerchantCannotTakeEveryPlace()
    {
        await using var replica = system.StartReplica(web => web.UseSetting("Payments:MaxRequestsInFlight", "2"));
        var slots = replica.Services.GetRequiredService<Payments.Api.Limits.RequestsInFlight>();
        var baseAddress = replica.ClientOptions.BaseAddress;
        var (first, second, third) = (await KeyAsync(), await KeyAsync(), await KeyAsync());

        using var heldByFirst = await HoldAsync(baseAddress, first, slots, expected: 1);
        using (var overShare = await GetEventsAsync(baseAddress, first))
        {
            await AssertShedAsync(overShare, "its share");
        }

        using (var others = await GetEventsAsync(baseAddress, second))
        {
            Assert.Equal(HttpStatusCode.OK, others.StatusCode); // the bound is not reached: another merchant is served
        }

        using var heldBySecond = await HoldAsync(baseAddress, second, slots, expected: 2);
        using (var overBound = await GetEventsAsync(baseAddress, third))
        {
            await AssertShedAsync(overBound, "its bound of 2");
        }

        using (var probe = await new HttpClient { BaseAddress = baseAddress }.GetAsync("/healthz"))
        {
            Assert.Equal(HttpStatusCode.OK, probe.StatusCode);
        }

        foreach (var held in new[] { heldByFirst, heldBySecond })
        {
            Assert.StartsWith("HTTP/1.1 400", await held.FinishAsync(), StringComparison.Ordinal); // "{}" opens no account: its own answer
        }

        // A place is given back just after its answer is sent: wait (bounded) for both.
        var waited = Stopwatch.StartNew();
        while (slots.Count > 0 && waited.Elapsed < TimeSpan.FromSeconds(20))
        {
            await Task.Delay(TimeSpan.FromMilliseconds(10));
        }

        using var again = await GetEventsAsync(baseAddress, third);
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
    }

    private static async Task AssertShedAsync(HttpResponseMessage refused, string why)
    {
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        var problem = await refused.JsonAsync();
        Assert.Equal(ProblemTypes.ServiceUnavailable, problem.GetProperty("type").GetString());
        Assert.Contains(why, problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(TimeSpan.FromSeconds(1), refused.Headers.RetryAfter?.Delta);
    }

    private Task<string> KeyAsync() =>
        system.Store.IssueApiKeyAsync($"merchant-{Guid.NewGuid():N}"[..20], CancellationToken.None, ApiScopes.PaymentsRead, ApiScopes.AccountsWrite);

    private static async Task<HttpResponseMessage> GetEventsAsync(Uri baseAddress, string key)
    {
        using var client = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(30) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return await client.GetAsync("/v1/events");
    }

    /// <summary>A request written by hand whose headers are on the wire and whose body's last byte is not, until
    /// <see cref="HeldRequest.FinishAsync"/>; returns once the replica counts it (<paramref name="expected"/> in
    /// flight, waited for with a bound), so that no request of the test's takes its place first.</summary>
    private static async Task<HeldRequest> HoldAsync(Uri baseAddress, string key, Payments.Api.Limits.RequestsInFlight slots, int expected)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync(baseAddress.Host, baseAddress.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"POST /v1/accounts HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\n"
            + $"Idempotency-Key: {Guid.NewGuid()}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{"));
        await stream.FlushAsync();
        var waited = Stopwatch.StartNew();
        while (slots.Count < expected && waited.Elapsed < TimeSpan.FromSeconds(20))
        {
            await Task.Delay(TimeSpan.FromMilliseconds(10));
        }

        Assert.Equal(expected, slots.Count);
        return new HeldRequest(tcp, stream);
    }

    private sealed class HeldRequest(TcpClient tcp, NetworkStream stream) : IDisposable
    {
        public async Task<string> FinishAsync()
        {
            await stream.WriteAsync("}"u8.ToArray());
            using var reader = new StreamReader(stream, Encoding.UTF8, leaveOpen: true);
            return await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }

        public void Dispose()
        {
            stream.Dispose();
            tcp.Dispose();
        }
    }
}

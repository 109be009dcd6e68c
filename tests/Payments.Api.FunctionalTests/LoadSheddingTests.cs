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

    /// <summary>A status read was exempt by its <c>wait</c> parameter alone: <c>?wait=0</c>, or a wait past the
    /// merchant's waiter places, was an etcd read (and an archive read) that no bound counted. It is counted now; a
    /// wait that takes a waiter's place gives its place among those in flight back (the waiters' bound holds it), so a
    /// merchant's long waits do not take its share.</summary>
    [Fact]
    public async Task AStatusReadWithoutAWaitersPlace_IsCounted_AndAWaitThatTakesOne_GivesItsPlaceBack()
    {
        var merchant = MerchantKeysTests.NewMerchantId();
        using var creator = await system.ClientForAsync(merchant);
        await creator.OpenAccountAsync($"{merchant}-d", fundsMinor: ApiSystemFixture.ReviewThresholdMinor * 2);
        await creator.OpenAccountAsync($"{merchant}-c");
        var paymentId = (await (await creator.PayAsync($"{merchant}-d", $"{merchant}-c", ApiSystemFixture.ReviewThresholdMinor + 1)).JsonAsync())
            .GetProperty("paymentId").GetString()!;
        await creator.WaitForStatusAsync(paymentId, "awaiting_approval"); // it stays there: nobody reviews it

        await using var replica = system.StartReplica(web => web.UseSetting("Payments:MaxRequestsInFlight", "2")); // a merchant's share: 1
        var slots = replica.Services.GetRequiredService<Payments.Api.Limits.RequestsInFlight>();
        var waits = replica.Services.GetRequiredService<Payments.Api.Apis.PaymentStatusWaits>();
        var baseAddress = replica.ClientOptions.BaseAddress;
        var key = await system.Store.IssueApiKeyAsync(merchant, CancellationToken.None, ApiScopes.PaymentsRead, ApiScopes.AccountsWrite);

        using (var held = await HoldAsync(baseAddress, key, slots, expected: 1))
        {
            using var read = await GetAsync(baseAddress, key, $"/v1/payments/{paymentId}?wait=0");
            await AssertShedAsync(read, "its share");
            Assert.StartsWith("HTTP/1.1 400", await held.FinishAsync(), StringComparison.Ordinal);
        }

        await PollAsync(() => slots.Count == 0, "the held request's place was never given back");
        using var stop = new CancellationTokenSource();
        var waiting = GetAsync(baseAddress, key, $"/v1/payments/{paymentId}?wait=30&status=awaiting_approval", stop.Token);
        await PollAsync(() => waits.Waiting == 1 && slots.Count == 0, "the wait did not take a waiter's place, or kept its place in flight");
        using (var events = await GetEventsAsync(baseAddress, key))
        {
            Assert.Equal(HttpStatusCode.OK, events.StatusCode); // the merchant's share is free while its wait goes on
        }

        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
    }

    private static async Task PollAsync(Func<bool> condition, string failure)
    {
        var waited = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(20), failure);
            await Task.Delay(TimeSpan.FromMilliseconds(10));
        }
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

    private static Task<HttpResponseMessage> GetEventsAsync(Uri baseAddress, string key) => GetAsync(baseAddress, key, "/v1/events");

    private static async Task<HttpResponseMessage> GetAsync(Uri baseAddress, string key, string path, CancellationToken cancellationToken = default)
    {
        using var client = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(60) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return await client.GetAsync(path, cancellationToken);
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

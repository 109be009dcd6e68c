extern alias Edge;

using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Edge::Payments.Edge;
using Edge::Payments.Edge.Extensions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;
using Payments.Api.Apis;
using Payments.Domain;
using Payments.Testing;

namespace Payments.Api.FunctionalTests;

/// <summary>The public API through the edge load balancer (the real YARP edge, in process, in front of the API on real
/// HTTP): what a merchant behind it sees.</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class EdgeTests(ApiSystemFixture system) : IAsyncLifetime
{
    private WebApplication? edge;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Configuration["Edge:Backends"] = system.BaseAddress.ToString();
        builder.AddEdge();
        edge = builder.Build();
        edge.UseEdge();
        await edge.StartAsync();
    }

    public Task DisposeAsync() => InProcessApp.StopAsync(edge);

    [Fact]
    public void TheEdgesBodyLimit_IsTheApisOwn() => Assert.Equal(RequestBody.MaxBytes, new EdgeOptions().MaxRequestBodyBytes);

    /// <summary>A status wait (GET ?wait=) gets exactly the API's longest wait on top of the edge's request timeout.</summary>
    [Fact]
    public void TheEdgesStatusWaitAllowance_IsTheApisLongestWait() =>
        Assert.Equal(TimeSpan.FromSeconds(PaymentStatusWaits.MaxWaitSeconds), EdgeOptions.MaxStatusWait);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A2MiBBody_Gets413ProblemJson_FromTheEdge_NotAnEmpty502(bool declaredLength)
    {
        // Several times: behind a proxy the outcome of an oversized upload is a race (the API answers and closes while
        // the proxy still sends), so one lucky answer proves nothing.
        for (var attempt = 0; attempt < Attempts; attempt++)
        {
            await SendOversizedAsync(declaredLength);
        }
    }

    private const int Attempts = 10;

    private async Task SendOversizedAsync(bool declaredLength)
    {
        using var client = await MerchantClientAsync();
        var body = Encoding.UTF8.GetBytes("{\"reference\":\"" + new string('x', 2 * 1024 * 1024) + "\"}");
        using var content = declaredLength ? (HttpContent)new ByteArrayContent(body) : new StreamContent(new MemoryStream(body));
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/payments") { Content = content };
        request.Headers.Add("Idempotency-Key", $"edge-{Guid.NewGuid():N}");
        if (!declaredLength)
        {
            request.Headers.TransferEncodingChunked = true;
        }

        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("https://daprpayments.dev/problems/payload-too-large", problem.RootElement.GetProperty("type").GetString());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ABodyWithinTheLimit_IsForwarded_AndTheApiAnswers(bool declaredLength)
    {
        using var client = await MerchantClientAsync();
        using var content = new StringContent("""{"amountMinor":"not-a-number"}""", Encoding.UTF8, "application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/payments") { Content = content };
        request.Headers.TransferEncodingChunked = !declaredLength;
        request.Headers.Add("Idempotency-Key", $"edge-{Guid.NewGuid():N}");
        using var response = await client.SendAsync(request);

        // The API's own answer about this very body (so the body arrived whole), passed through unchanged.
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("https://daprpayments.dev/problems/malformed-request", problem.RootElement.GetProperty("type").GetString());
        Assert.Contains("amountMinor", problem.RootElement.GetProperty("detail").GetString(), StringComparison.Ordinal);
        // Nothing says what serves it, and nothing of it is to be stored or sniffed.
        Assert.False(response.Headers.Contains("Server"));
        Assert.Equal("no-store", response.Headers.CacheControl?.ToString());
        Assert.Equal("nosniff", response.Headers.GetValues("X-Content-Type-Options").Single());
    }

    /// <summary>The operator's surface and the apps' metrics are reached inside the cluster only: through the edge, even
    /// with the operator's token, its routes, its OpenAPI document and the scrape endpoint are not found; the
    /// merchants' document is served.</summary>
    [Theory]
    [InlineData("/admin/v1/merchants/acme")]
    [InlineData("/metrics")]
    [InlineData("/Metrics/")]
    [InlineData("/openapi/admin.json")]
    [InlineData("/OpenAPI/admin.json")]
    public async Task TheOperatorsSurface_IsNotRoutedByTheEdge(string path)
    {
        using var client = new HttpClient { BaseAddress = new Uri(InProcessApp.BaseUrl(edge!)), Timeout = TimeSpan.FromSeconds(30) };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", ApiSystemFixture.AdminToken);
        using var response = await client.GetAsync(path);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal(ProblemTypes.NotFound, (await response.JsonAsync()).GetProperty("type").GetString());
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/openapi/v1.json")).StatusCode);
    }

    /// <summary>The findings: CONNECT (which the proxy cannot create a request for) was answered 503
    /// service-unavailable with Retry-After — retry — and a stack trace logged each time; and methods are
    /// case-sensitive (RFC 9110 §9.1) while routing ignores case, so "post" made a payment and "get" read an account,
    /// around any proxy or firewall rule written for POST. Both are methods this server does not implement: 501
    /// problem+json, for every path, at the edge, the API and the internal services alike. Written by hand: HttpClient
    /// sends CONNECT only as a proxy tunnel.</summary>
    [Theory]
    [InlineData("edge", "CONNECT /v1/payments HTTP/1.1")]
    [InlineData("edge", "CONNECT {authority} HTTP/1.1")]
    [InlineData("edge", "post /v1/payments HTTP/1.1")]
    [InlineData("edge", "get /v1/accounts/alice HTTP/1.1")]
    [InlineData("edge", "Get /healthz HTTP/1.1")]
    [InlineData("api", "post /v1/payments HTTP/1.1")]
    [InlineData("api", "CONNECT /v1/payments HTTP/1.1")]
    [InlineData("ledger", "post /ledger/v1/transfers HTTP/1.1")]
    public async Task UnimplementedMethods_Are501ProblemJson_NotRunNorRetried(string server, string requestLine)
    {
        var address = server switch
        {
            "edge" => new Uri(InProcessApp.BaseUrl(edge!)),
            "api" => system.BaseAddress,
            _ => system.LedgerServiceAddress,
        };
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(address.Host, address.Port);
        await using var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"{requestLine.Replace("{authority}", address.Authority, StringComparison.Ordinal)}\r\nHost: {address.Authority}\r\nConnection: close\r\n\r\n"));
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var answer = await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.StartsWith("HTTP/1.1 501", answer, StringComparison.Ordinal);
        Assert.Contains("application/problem+json", answer, StringComparison.Ordinal);
        Assert.Contains(ProblemTypes.MethodNotImplemented, answer, StringComparison.Ordinal);
        Assert.DoesNotContain("Retry-After", answer, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("Allow:", answer, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Found by a probe: an empty Host (allowed by RFC 9112 §3.2 for a target without an authority, and
    /// answered by the API) was answered by the edge with a bare 400 — the proxy could not forward it. Every answer is
    /// problem+json: forwarded, the API answers it as any other (here 401, no key).</summary>
    [Fact]
    public async Task AnEmptyHost_IsAnsweredWithAProblem_NotABare400()
    {
        var address = new Uri(InProcessApp.BaseUrl(edge!));
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(address.Host, address.Port);
        await using var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes("GET /v1/accounts/alice HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n"));
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var answer = await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.True(answer.Contains("application/problem+json", StringComparison.Ordinal), answer);
        Assert.StartsWith("HTTP/1.1 401", answer, StringComparison.Ordinal);
    }

    /// <summary>Found by a probe: a field the request's Connection header names (for the edge alone, RFC 9110 §7.6.1)
    /// reached the API. Here the caller's own Authorization, named there, is not forwarded: the API answers 401 where,
    /// with the same key and no such option, it answers the payment's own 404. (Kestrel keeps only the standard option
    /// of a Connection value that has one — "close, X" reads "close" — so what the edge can drop is what it is shown.)</summary>
    [Theory]
    [InlineData(null, HttpStatusCode.NotFound)]
    [InlineData("Authorization", HttpStatusCode.Unauthorized)]
    [InlineData("X-Other, authorization", HttpStatusCode.Unauthorized)]
    public async Task AFieldTheConnectionHeaderNames_IsNotForwarded(string? connection, HttpStatusCode expected)
    {
        using var client = await MerchantClientAsync();
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/payments/pay_{Guid.NewGuid():N}");
        if (connection is not null)
        {
            Assert.True(request.Headers.TryAddWithoutValidation("Connection", connection));
        }

        using var response = await client.SendAsync(request);

        Assert.Equal(expected, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    /// <summary>Found by a probe: a request within the documented header limits (100 lines, 32 KiB) passed the edge
    /// and was refused by the replica with a bare 431 — the replica had the same limits, and the edge adds its
    /// X-Forwarded-* headers. Within the limits, the API answers (here 401, no key).</summary>
    [Theory]
    [InlineData(98, 0)] // with Host and Connection: 100 header lines
    [InlineData(0, 32_700)] // one header of 32,700 bytes: with Host and Connection, just under 32 KiB
    public async Task ARequestWithinTheHeaderLimits_ReachesTheApi_ThroughTheEdge(int extraLines, int bigHeaderBytes)
    {
        var address = new Uri(InProcessApp.BaseUrl(edge!));
        var headers = new StringBuilder($"GET /v1/accounts/alice HTTP/1.1\r\nHost: {address.Authority}\r\n");
        for (var line = 0; line < extraLines; line++)
        {
            headers.Append(CultureInfo.InvariantCulture, $"X-H{line}: v\r\n");
        }

        if (bigHeaderBytes > 0)
        {
            headers.Append("X-Big: ").Append('a', bigHeaderBytes).Append("\r\n");
        }

        headers.Append("Connection: close\r\n\r\n");
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(address.Host, address.Port);
        await using var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(headers.ToString()));
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var answer = await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.True(answer.StartsWith("HTTP/1.1 401", StringComparison.Ordinal), answer.Split("\r\n")[0]);
        Assert.Contains("application/problem+json", answer, StringComparison.Ordinal);
    }

    /// <summary>A request no replica can take (none listening) is answered as every other answer: problem+json,
    /// 503 service-unavailable with Retry-After — not YARP's 502 without a body.</summary>
    [Fact]
    public async Task ARequestNoReplicaCanTake_GetsA503Problem_NotABare502()
    {
        using var reserved = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        reserved.Bind(new IPEndPoint(IPAddress.Loopback, 0)); // bound, never listening: every connection is refused
        var lonely = await EdgeHost.StartAsync(new Uri($"http://127.0.0.1:{((IPEndPoint)reserved.LocalEndPoint!).Port}/"));
        try
        {
            using var client = EdgeHost.Client(lonely, apiKey: null);
            using var response = await client.GetAsync("/v1/accounts/anyone");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            Assert.Equal(ProblemTypes.ServiceUnavailable, (await response.JsonAsync()).GetProperty("type").GetString());
            Assert.NotNull(response.Headers.RetryAfter);
        }
        finally
        {
            await InProcessApp.StopAsync(lonely);
        }
    }

    /// <summary>A replica that takes the request and never answers: past the edge's bound the client gets 503
    /// problem+json with Retry-After — YARP alone answered the edge's own timeout as a bodiless 400 (the client gone).</summary>
    [Fact]
    public async Task ARequestNoReplicaAnswersInTime_GetsA503Problem_NotABare400()
    {
        var silent = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        silent.Start(); // accepts (the kernel's backlog) and never reads nor answers
        var lonely = await EdgeHost.StartAsync(TimeSpan.FromSeconds(1), new Uri($"http://127.0.0.1:{((IPEndPoint)silent.LocalEndpoint).Port}/"));
        try
        {
            using var client = EdgeHost.Client(lonely, apiKey: null);
            using var response = await client.GetAsync("/v1/accounts/anyone");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            var problem = await response.JsonAsync();
            Assert.Equal(ProblemTypes.ServiceUnavailable, problem.GetProperty("type").GetString());
            Assert.Contains("in time", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
            Assert.NotNull(response.Headers.RetryAfter);
        }
        finally
        {
            await InProcessApp.StopAsync(lonely);
            silent.Stop();
        }
    }

    /// <summary>A client that sends its body too slowly runs out the edge's bound before anything is forwarded: 408
    /// problem+json, its own doing — forwarded while it trickled in, the timeout counted against the replica, and three
    /// such requests from anyone took a healthy replica out.</summary>
    [Fact]
    public async Task ABodyThatDoesNotArriveInTime_Gets408Problem_BeforeAnythingIsForwarded()
    {
        var reached = 0;
        var replica = WebApplication.CreateSlimBuilder();
        replica.WebHost.UseUrls("http://127.0.0.1:0");
        replica.Logging.ClearProviders();
        var backend = replica.Build();
        backend.MapPost("/v1/payments", () => { Interlocked.Increment(ref reached); return Microsoft.AspNetCore.Http.Results.Ok(); });
        backend.MapGet("/readyz", () => Microsoft.AspNetCore.Http.Results.Ok()); // the edge's probe
        await backend.StartAsync();
        var lonely = await EdgeHost.StartAsync(TimeSpan.FromSeconds(1), new Uri(backend.Urls.First()));
        try
        {
            using var socket = new System.Net.Sockets.TcpClient();
            await socket.ConnectAsync(IPAddress.Loopback, EdgeHost.Address(lonely).Port);
            var stream = socket.GetStream();
            await stream.WriteAsync(Encoding.ASCII.GetBytes(
                "POST /v1/payments HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"debtor"));
            using var reader = new StreamReader(stream, Encoding.ASCII); // the rest of the body never comes
            var statusLine = await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.StartsWith("HTTP/1.1 408", statusLine, StringComparison.Ordinal);
            var headers = new List<string>();
            for (var line = await reader.ReadLineAsync(); !string.IsNullOrEmpty(line); line = await reader.ReadLineAsync())
            {
                headers.Add(line);
            }

            Assert.Contains(headers, header => header.StartsWith("Content-Type: application/problem+json", StringComparison.OrdinalIgnoreCase));
            Assert.Equal(0, Volatile.Read(ref reached));
        }
        finally
        {
            await InProcessApp.StopAsync(lonely);
            await InProcessApp.StopAsync(backend);
        }
    }

    /// <summary>Found by a black-box probe: "Transfer-Encoding: gzip, chunked" was taken, the gzip bytes read as the
    /// body and the header that named them dropped by the edge (a confusing 400, or a plain body taken despite the
    /// header). A transfer coding other than chunked is refused as a content coding is: 415.</summary>
    [Fact]
    public async Task ATransferCodingOtherThanChunked_Gets415Problem_FromTheEdge()
    {
        using var socket = new System.Net.Sockets.TcpClient();
        await socket.ConnectAsync(IPAddress.Loopback, new Uri(InProcessApp.BaseUrl(edge!)).Port);
        var stream = socket.GetStream();
        const string Json = "{\"accountId\":\"te-1\",\"currency\":\"EUR\"}";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            "POST /v1/accounts HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n"
            + $"{Json.Length:x}\r\n{Json}\r\n0\r\n\r\n"));
        using var reader = new StreamReader(stream, Encoding.ASCII);
        var answer = await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.StartsWith("HTTP/1.1 415", answer, StringComparison.Ordinal);
        var json = answer[answer.IndexOf('{', StringComparison.Ordinal)..(answer.LastIndexOf('}') + 1)];
        Assert.Equal(ProblemTypes.UnsupportedMediaType, JsonDocument.Parse(json).RootElement.GetProperty("type").GetString());
    }

    /// <summary>The finding: a body whose chunk framing is broken escaped the edge's body reading as an exception: a
    /// bodiless 400, and an error with a stack trace in the edge's log for every such request, anyone's to send. A later
    /// probe: a chunk size past 2^31 − 1 (which Kestrel reports as an IOException, not a bad request) was a 500 "retry".</summary>
    [Theory]
    [InlineData("zz")]
    [InlineData("80000000")]
    [InlineData("ffffffffffffffff")]
    public async Task ABodyWithBrokenChunks_Gets400Problem_FromTheEdge(string chunkSize)
    {
        using var socket = new System.Net.Sockets.TcpClient();
        await socket.ConnectAsync(IPAddress.Loopback, new Uri(InProcessApp.BaseUrl(edge!)).Port);
        var stream = socket.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            "POST /v1/payments HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkSize + "\r\n"));
        using var reader = new StreamReader(stream, Encoding.ASCII);
        var statusLine = await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
        var headers = new List<string>();
        for (var line = await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30)); !string.IsNullOrEmpty(line);
             line = await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30)))
        {
            headers.Add(line);
        }

        Assert.StartsWith("HTTP/1.1 400", statusLine, StringComparison.Ordinal);
        Assert.Contains(headers, header => header.StartsWith("Content-Type: application/problem+json", StringComparison.OrdinalIgnoreCase));
        Assert.Contains(headers, header => header.Equals("Cache-Control: no-store", StringComparison.OrdinalIgnoreCase));
        // The edge closes the connection after it (the rest of the body cannot be told from the next request); the
        // body may come in chunks, so the JSON is taken from between its braces.
        var rest = await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(30));
        var json = rest[rest.IndexOf('{', StringComparison.Ordinal)..(rest.LastIndexOf('}') + 1)];
        Assert.Equal(ProblemTypes.MalformedRequest, JsonDocument.Parse(json).RootElement.GetProperty("type").GetString());
    }

    /// <summary>A probe: framing RFC 9112 calls faulty was taken — an HTTP/1.0 request with Transfer-Encoding decoded as
    /// chunked and its connection kept open, chunked named twice — and a front proxy that
    /// frames by the rules reads such a connection otherwise (request smuggling). The edge and the API (which an ingress
    /// reaches directly) refuse it, 400 malformed-request, and close the connection: the request sent after it on the
    /// same connection is never answered.</summary>
    [Theory]
    [InlineData("edge", "HTTP/1.0", "Transfer-Encoding: chunked\r\n")]
    [InlineData("edge", "HTTP/1.1", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n")]
    [InlineData("api", "HTTP/1.0", "Transfer-Encoding: chunked\r\n")]
    [InlineData("api", "HTTP/1.1", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n")]
    public async Task FaultyFraming_Is400_AndTheConnectionCloses(string target, string version, string framing)
    {
        var address = target == "edge" ? new Uri(InProcessApp.BaseUrl(edge!)) : system.BaseAddress;
        const string Json = "{\"accountId\":\"ff-1\",\"currency\":\"EUR\"}";
        using var socket = new System.Net.Sockets.TcpClient();
        await socket.ConnectAsync(IPAddress.Loopback, address.Port);
        var stream = socket.GetStream();
        var body = $"{Json.Length:x}\r\n{Json}\r\n0\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"POST /v1/accounts {version}\r\nHost: {address.Authority}\r\nConnection: keep-alive\r\nContent-Type: application/json\r\n"
            + framing + "\r\n" + body
            + $"GET /healthz HTTP/1.1\r\nHost: {address.Authority}\r\n\r\n"));
        using var reader = new StreamReader(stream, Encoding.ASCII);
        var answer = await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(30)); // ends only if the server closes

        Assert.StartsWith("HTTP/1.1 400", answer, StringComparison.Ordinal);
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(answer, "^HTTP/1\\.1 ", System.Text.RegularExpressions.RegexOptions.Multiline));
        var json = answer[answer.IndexOf('{', StringComparison.Ordinal)..(answer.LastIndexOf('}') + 1)];
        Assert.Equal(ProblemTypes.MalformedRequest, JsonDocument.Parse(json).RootElement.GetProperty("type").GetString());
    }

    private async Task<HttpClient> MerchantClientAsync()
    {
        var direct = await system.NewMerchantClientAsync();
        var client = new HttpClient { BaseAddress = new Uri(InProcessApp.BaseUrl(edge!)), Timeout = TimeSpan.FromSeconds(30) };
        client.DefaultRequestHeaders.Authorization = direct.DefaultRequestHeaders.Authorization;
        direct.Dispose();
        return client;
    }
}

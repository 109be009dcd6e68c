using System.Net;
using System.Net.Http.Headers;
using Payments.Webhooks;

namespace Payments.Api.Webhooks;

/// <summary>How one delivery attempt ended.</summary>
public enum WebhookAttempt
{
    /// <summary>The receiver answered 2xx.</summary>
    Delivered,

    /// <summary>Any other answer, no answer within the timeout, or no connection: try again later.</summary>
    Failed,
}

/// <summary>Sends one signed delivery: POST of the event's JSON, exactly the bytes stored, with
/// <see cref="WebhookSignature.Header"/> (signed afresh at each attempt), the event id, no redirects followed and the
/// answer's body not read beyond its status. Connections go only to public addresses (<see cref="WebhookTargets"/>).</summary>
public sealed class WebhookSender : IDisposable
{
    private readonly HttpClient client;
    private readonly TimeProvider time;

    public WebhookSender(WebhookOptions options, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        this.time = time;
        var allowLoopback = options.AllowLoopbackTargets;
        var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = false, // a redirect could lead to an internal address after the check
            UseProxy = false,
            UseCookies = false,
            ConnectTimeout = options.DeliveryTimeout,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5), // DNS changes are seen, and re-checked
            // Per receiving host and port, which many merchants' endpoints may share (a webhook relay): the bound per
            // endpoint and per merchant is the dispatcher's slots. This bound at the endpoint's 4 made one merchant's
            // hanging receiver delay other merchants' deliveries to the same host by up to the delivery timeout (a
            // probe); the dispatcher's MaxInFlight bounds it overall.
            MaxConnectionsPerServer = options.MaxInFlight,
            MaxResponseHeadersLength = 64, // KiB
            ConnectCallback = (context, cancellationToken) => WebhookTargets.ConnectAsync(context.DnsEndPoint, allowLoopback, cancellationToken),
            // The platform's trace ids stay inside it: a merchant's receiver was sent each delivery's traceparent.
            ActivityHeadersPropagator = System.Diagnostics.DistributedContextPropagator.CreateNoOutputPropagator(),
        };
        client = new HttpClient(handler) { Timeout = options.DeliveryTimeout };
        client.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("DaprPayments-Webhooks", "1"));
    }

    /// <summary>One attempt; never throws for the receiver's faults (only when <paramref name="cancellationToken"/> ends).</summary>
    public async Task<(WebhookAttempt Outcome, string Detail)> SendAsync(
        string url, string eventId, byte[] body, IReadOnlyList<string> secrets, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
        request.Headers.TryAddWithoutValidation(WebhookSignature.Header, WebhookSignature.Sign(secrets, time.GetUtcNow(), body));
        request.Headers.TryAddWithoutValidation(WebhookSignature.IdHeader, eventId);
        try
        {
            // OpenTelemetry's HttpClient instrumentation writes the trace context into requests itself; a merchant's
            // receiver is outside the platform, so none goes out (the handler's own propagator sends none either).
            using var untraced = OpenTelemetry.SuppressInstrumentationScope.Begin();
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            return response.IsSuccessStatusCode
                ? (WebhookAttempt.Delivered, ((int)response.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture))
                : (WebhookAttempt.Failed, $"HTTP {(int)response.StatusCode}");
        }
        catch (HttpRequestException exception)
        {
            return (WebhookAttempt.Failed, exception.HttpRequestError + ": " + (exception.InnerException ?? exception).Message);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return (WebhookAttempt.Failed, "timeout");
        }
    }

    public void Dispose() => client.Dispose();
}

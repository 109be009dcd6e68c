using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Payments.Webhooks;

namespace Payments.Api.FunctionalTests;

/// <summary>One request the receiver got, as it came over the wire.</summary>
public sealed record ReceivedWebhook(string EventId, string? Signature, byte[] Body, int Attempt, DateTimeOffset At)
{
    /// <summary>The request's W3C trace context header, if it carried one (it must not: the platform's trace ids stay inside).</summary>
    public string? TraceParent { get; init; }
}

/// <summary>A merchant's webhook receiver, real HTTP on 127.0.0.1 (Kestrel): records every request and answers as the
/// test's <see cref="Behave"/> says — an HTTP status, after an optional delay (past the dispatcher's timeout it counts
/// as no answer). Counts requests in progress, to see the dispatcher's per-endpoint bound from the receiving side.</summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly WebApplication app;
    private readonly ConcurrentDictionary<string, int> attempts = new(StringComparer.Ordinal);
    private int inProgress;
    private int maxInProgress;

    private WebhookReceiver(WebApplication app) => this.app = app;

    /// <summary>Given the event id and which attempt of it this is (1, 2, …): the status to answer and how long to
    /// wait first. Default: 200 at once.</summary>
    public Func<string, int, Task<(int Status, TimeSpan Delay)>> Behave { get; set; } = (_, _) => Task.FromResult((200, TimeSpan.Zero));

    public ConcurrentQueue<ReceivedWebhook> Received { get; } = new();

    public string Url => app.Urls.First() + "/hooks";

    /// <summary>The most requests the receiver had in progress at once.</summary>
    public int MaxInProgress => Volatile.Read(ref maxInProgress);

    /// <summary>Requests in progress now.</summary>
    public int InProgress => Volatile.Read(ref inProgress);

    /// <summary>When set, every request waits for it before it is answered — or ends when the dispatcher gives up on it.</summary>
    public Task? Held { get; set; }

    public static async Task<WebhookReceiver> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var receiver = new WebhookReceiver(app);
        app.MapPost("/hooks", (Delegate)receiver.HandleAsync);
        await app.StartAsync();
        return receiver;
    }

    /// <summary>The ids of the events answered 2xx at least once.</summary>
    public HashSet<string> Acknowledged { get; } = [];

    private async Task<IResult> HandleAsync(HttpContext context)
    {
        var now = Interlocked.Increment(ref inProgress);
        InterlockedMax(ref maxInProgress, now);
        try
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            var eventId = context.Request.Headers[WebhookSignature.IdHeader].ToString();
            var attempt = attempts.AddOrUpdate(eventId, 1, (_, count) => count + 1);
            Received.Enqueue(new ReceivedWebhook(eventId, context.Request.Headers[WebhookSignature.Header].ToString(), body.ToArray(), attempt, DateTimeOffset.UtcNow)
            {
                TraceParent = context.Request.Headers.TryGetValue("traceparent", out var traceParent) ? traceParent.ToString() : null,
            });
            var (status, delay) = await Behave(eventId, attempt);
            if (Held is { } held)
            {
                await held.WaitAsync(context.RequestAborted);
            }

            if (delay > TimeSpan.Zero)
            {
                await Task.Delay(delay, context.RequestAborted);
            }

            if (status is >= 200 and < 300)
            {
                lock (Acknowledged)
                {
                    Acknowledged.Add(eventId);
                }
            }

            return Results.StatusCode(status);
        }
        catch (OperationCanceledException)
        {
            return Results.StatusCode(499); // the dispatcher gave up waiting: nothing is sent back
        }
        finally
        {
            Interlocked.Decrement(ref inProgress);
        }
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int seen;
        while (value > (seen = Volatile.Read(ref target)) && Interlocked.CompareExchange(ref target, value, seen) != seen)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }
}

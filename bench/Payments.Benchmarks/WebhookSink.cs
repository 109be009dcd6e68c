using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Payments.Webhooks;

namespace Payments.Benchmarks;

/// <summary>The benchmark's merchants' webhook receiver (Kestrel on 127.0.0.1): verifies each delivery's signature
/// as a merchant would, answers 200, and completes whoever waits for that payment's final event.</summary>
public sealed class WebhookSink : IAsyncDisposable
{
    /// <summary>Payments whose final event a client still waits for, at most (one per client in practice).</summary>
    public const int MaxWaiting = 100_000;

    private readonly WebApplication app;
    private readonly ConcurrentDictionary<string, TaskCompletionSource<string>> finals = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> secrets = new(StringComparer.Ordinal);
    private long refused;

    private WebhookSink(WebApplication app) => this.app = app;

    public string Url => app.Urls.First() + "/hooks/";

    /// <summary>Deliveries whose signature did not verify (should stay 0).</summary>
    public long Refused => Interlocked.Read(ref refused);

    public static async Task<WebhookSink> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var sink = new WebhookSink(app);
        app.MapPost("/hooks/{merchant}", (Delegate)sink.ReceiveAsync);
        await app.StartAsync();
        return sink;
    }

    /// <summary>The secret the merchant's endpoint signs with.</summary>
    public void Trust(string merchant, string secret) => secrets[merchant] = secret;

    /// <summary>Completes with the payment's final status when its final event arrives (or arrived already).</summary>
    public Task<string> FinalStatusAsync(string paymentId) => Waiter(paymentId).Task;

    /// <summary>Stops tracking a payment (its final event came, or the client gave up).</summary>
    public void Forget(string paymentId) => finals.TryRemove(paymentId, out _);

    private TaskCompletionSource<string> Waiter(string paymentId) =>
        finals.Count < MaxWaiting
            ? finals.GetOrAdd(paymentId, _ => new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously))
            : throw new InvalidOperationException($"More than {MaxWaiting} payments waited on.");

    private async Task<IResult> ReceiveAsync(string merchant, HttpContext context)
    {
        using var buffer = new MemoryStream();
        await context.Request.Body.CopyToAsync(buffer);
        var body = buffer.ToArray();
        if (!secrets.TryGetValue(merchant, out var secret)
            || WebhookSignature.Verify(context.Request.Headers[WebhookSignature.Header], body, [secret], DateTimeOffset.UtcNow) != WebhookVerification.Valid)
        {
            Interlocked.Increment(ref refused);
            return Results.StatusCode(StatusCodes.Status400BadRequest);
        }

        var data = JsonDocument.Parse(body).RootElement.GetProperty("data");
        var status = data.GetProperty("status").GetString()!;
        if (status is "completed" or "failed" or "compensated")
        {
            Waiter(data.GetProperty("paymentId").GetString()!).TrySetResult(status);
        }

        return Results.Ok();
    }

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }
}

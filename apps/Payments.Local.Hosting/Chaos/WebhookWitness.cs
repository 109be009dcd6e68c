using System.Collections.Concurrent;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Payments.Orchestrator.Client.Records;
using Payments.Webhooks;

namespace Payments.Local.Hosting.Chaos;

/// <summary>Merchants' webhook receiver for the local system's campaigns and benchmarks (Kestrel on 127.0.0.1):
/// verifies every delivery's signature as a merchant would, refuses one in <c>refuseOneIn</c> at random with 500 (the
/// fault campaign: so that retries happen under the faults too), remembers the event ids it accepted, and tells
/// <c>onAccepted</c> of each accepted event.</summary>
public sealed class WebhookWitness : IAsyncDisposable
{
    /// <summary>Event ids remembered at most (a campaign has a few thousand).</summary>
    public const int MaxRemembered = 1_000_000;

    /// <summary>The fault campaign refuses one delivery in this many.</summary>
    public const int RefuseOneIn = 10;

    /// <summary>How long after the payments settled their events may still take to arrive (the dispatcher's lock
    /// changing hands, retries backing off).</summary>
    public static readonly TimeSpan DeliveryBound = TimeSpan.FromMinutes(3);

    private readonly WebApplication app;
    private readonly int refuseOneIn;
    private readonly Action<JsonElement>? onAccepted;
    private readonly ConcurrentDictionary<string, string> secrets = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> accepted = new(StringComparer.Ordinal);
    private long badSignatures;

    private WebhookWitness(WebApplication app, int refuseOneIn, Action<JsonElement>? onAccepted) =>
        (this.app, this.refuseOneIn, this.onAccepted) = (app, refuseOneIn, onAccepted);

    public long BadSignatures => Interlocked.Read(ref badSignatures);

    /// <param name="refuseOneIn">Refuse one delivery in this many at random (0: never).</param>
    /// <param name="onAccepted">Told of each event accepted (its body), on the request's thread.</param>
    public static async Task<WebhookWitness> StartAsync(int refuseOneIn = RefuseOneIn, Action<JsonElement>? onAccepted = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var witness = new WebhookWitness(app, refuseOneIn, onAccepted);
        app.MapPost("/hooks/{merchant}", (Delegate)witness.ReceiveAsync);
        await app.StartAsync();
        return witness;
    }

    /// <summary>Registers the merchant's endpoint (through the public API, with <paramref name="http"/>'s key) and
    /// trusts its secret.</summary>
    /// <param name="events">The event types the endpoint wants (null: all).</param>
    public async Task RegisterAsync(HttpClient http, string merchant, CancellationToken cancellationToken, IReadOnlyList<string>? events = null)
    {
        ArgumentNullException.ThrowIfNull(http);
        using var response = await http.PostAsJsonAsync("/v1/webhook-endpoints", new { url = app.Urls.First() + "/hooks/" + merchant, events }, cancellationToken);
        response.EnsureSuccessStatusCode();
        secrets[merchant] = (await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken)).GetProperty("secret").GetString()!;
    }

    /// <summary>The final events of <paramref name="payments"/> (id and final status) not accepted within
    /// <see cref="DeliveryBound"/>, waiting for them (polling, bounded).</summary>
    public async Task<IReadOnlyList<string>> MissingAsync(IReadOnlyList<(string PaymentId, string Status)> payments, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(payments);
        var expected = payments.Select(payment => PaymentEvents.IdFor(payment.PaymentId, PaymentEvents.TypeFor(payment.Status)!)).ToArray();
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var missing = expected.Where(id => !accepted.ContainsKey(id)).ToArray();
            if (missing.Length == 0 || waited.Elapsed >= DeliveryBound)
            {
                return missing;
            }

            await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
        }
    }

    private async Task<IResult> ReceiveAsync(string merchant, HttpContext context)
    {
        using var buffer = new MemoryStream();
        await context.Request.Body.CopyToAsync(buffer, context.RequestAborted);
        var body = buffer.ToArray();
        if (!secrets.TryGetValue(merchant, out var secret)
            || WebhookSignature.Verify(context.Request.Headers[WebhookSignature.Header], body, [secret], DateTimeOffset.UtcNow) != WebhookVerification.Valid)
        {
            Interlocked.Increment(ref badSignatures);
            return Results.StatusCode(StatusCodes.Status400BadRequest);
        }

        if (refuseOneIn > 0 && Random.Shared.Next(refuseOneIn) == 0)
        {
            return Results.StatusCode(StatusCodes.Status500InternalServerError);
        }

        var paymentEvent = JsonDocument.Parse(body).RootElement;
        if (accepted.Count < MaxRemembered)
        {
            accepted[WebhookSignature.EventIdOf(body)!] = 0; // the signed id; past the bound, MissingAsync reports them missing
        }

        onAccepted?.Invoke(paymentEvent);
        return Results.Ok();
    }

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }
}

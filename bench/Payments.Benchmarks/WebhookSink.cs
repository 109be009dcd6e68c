using System.Collections.Concurrent;
using System.Text.Json;
using Payments.Local.Hosting.Chaos;
using Payments.Orchestrator.Client.Records;

namespace Payments.Benchmarks;

/// <summary>The benchmark's merchants' webhook receiver: the local system's <see cref="WebhookWitness"/> (signatures
/// verified, nothing refused), completing whoever waits for a payment's final event.</summary>
public sealed class WebhookSink : IAsyncDisposable
{
    /// <summary>Payments whose final event a client still waits for, at most (one per client in practice).</summary>
    public const int MaxWaiting = 100_000;

    private readonly ConcurrentDictionary<string, TaskCompletionSource<string>> finals = new(StringComparer.Ordinal);
    private WebhookWitness witness = null!;

    public static async Task<WebhookSink> StartAsync()
    {
        var sink = new WebhookSink();
        sink.witness = await WebhookWitness.StartAsync(refuseOneIn: 0, sink.OnAccepted);
        return sink;
    }

    /// <summary>Deliveries whose signature did not verify (should stay 0).</summary>
    public long Refused => witness.BadSignatures;

    /// <summary>Registers the merchant's endpoint for final events only.</summary>
    public Task RegisterAsync(HttpClient http, string merchant, CancellationToken cancellationToken) =>
        witness.RegisterAsync(http, merchant, cancellationToken, [PaymentEvents.Completed, PaymentEvents.Failed, PaymentEvents.Compensated]);

    /// <summary>Completes with the payment's final status when its final event arrives (or arrived already).</summary>
    public Task<string> FinalStatusAsync(string paymentId) => Waiter(paymentId).Task;

    /// <summary>Stops tracking a payment (its final event came, or the client gave up).</summary>
    public void Forget(string paymentId) => finals.TryRemove(paymentId, out _);

    private void OnAccepted(JsonElement paymentEvent)
    {
        var data = paymentEvent.GetProperty("data");
        var paymentId = data.GetProperty("paymentId").GetString()!;
        if (finals.Count < MaxWaiting || finals.ContainsKey(paymentId)) // a late duplicate past the bound is dropped
        {
            Waiter(paymentId).TrySetResult(data.GetProperty("status").GetString()!);
        }
    }

    private TaskCompletionSource<string> Waiter(string paymentId) =>
        finals.Count < MaxWaiting
            ? finals.GetOrAdd(paymentId, _ => new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously))
            : throw new InvalidOperationException($"More than {MaxWaiting} payments waited on.");

    public ValueTask DisposeAsync() => witness.DisposeAsync();
}

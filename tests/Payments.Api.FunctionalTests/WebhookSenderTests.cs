using Payments.Api.Webhooks;

namespace Payments.Api.FunctionalTests;

/// <summary>The sender against a real receiver: many merchants' endpoints may share a receiving host and port (a
/// webhook relay), so the sender does not bound connections per host at one endpoint's bound.</summary>
public sealed class WebhookSenderTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    /// <summary>Found by a probe: the handler's connections per server were the per-endpoint bound (4), so four
    /// attempts held by one merchant's hanging receiver made every other merchant's delivery to that host wait.</summary>
    [Fact]
    public async Task MoreAttemptsThanOneEndpointsBound_ReachOneHostAtOnce()
    {
        var options = new WebhookOptions { AllowLoopbackTargets = true };
        await using var receiver = await WebhookReceiver.StartAsync();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        receiver.Held = release.Task;
        using var sender = new WebhookSender(options, TimeProvider.System);
        var attempts = options.MaxConcurrencyPerEndpoint * 2;
        var sends = Enumerable.Range(0, attempts)
            .Select(index => sender.SendAsync(receiver.Url, $"evt_{index}", "{}"u8.ToArray(), ["whsec_test"], CancellationToken.None)).ToArray();
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (receiver.InProgress < attempts)
        {
            Assert.True(waited.Elapsed < Bound, $"Only {receiver.InProgress} of {attempts} attempts reached the host at once.");
            await Task.Delay(10);
        }

        release.SetResult();
        Assert.All(await Task.WhenAll(sends).WaitAsync(Bound), sent => Assert.Equal(WebhookAttempt.Delivered, sent.Outcome));
    }
}

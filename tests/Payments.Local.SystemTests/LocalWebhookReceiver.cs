using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Payments.Webhooks;

namespace Payments.Local.SystemTests;

/// <summary>One request a merchant's receiver got: the path it was sent to, and what verifies it.</summary>
public sealed record LocalWebhook(string Path, string EventId, string? Signature, byte[] Body);

/// <summary>A merchant's webhook receiver on 127.0.0.1 (real HTTP, <see cref="HttpListener"/>): records every request
/// and answers 200. The local run command admits loopback targets, as it does for a developer's receiver.</summary>
public sealed class LocalWebhookReceiver : IDisposable
{
    /// <summary>Requests answered at most: the receiver stops recording past it (a test never needs more).</summary>
    public const int MaxRequests = 10_000;

    private readonly HttpListener listener = new();
    private readonly Task serving;

    private LocalWebhookReceiver(int port)
    {
        BaseUrl = $"http://127.0.0.1:{port}";
        listener.Prefixes.Add(BaseUrl + "/");
        listener.Start();
        serving = Task.Run(ServeAsync);
    }

    public string BaseUrl { get; }

    public ConcurrentQueue<LocalWebhook> Received { get; } = new();

    public static LocalWebhookReceiver Start()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return new LocalWebhookReceiver(port);
    }

    private async Task ServeAsync()
    {
        for (var served = 0; served < MaxRequests && listener.IsListening; served++)
        {
            HttpListenerContext context;
            try
            {
                context = await listener.GetContextAsync();
            }
            catch (Exception exception) when (exception is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return; // stopped
            }

            try
            {
                using var body = new MemoryStream();
                await context.Request.InputStream.CopyToAsync(body);
                Received.Enqueue(new LocalWebhook(
                    context.Request.Url!.AbsolutePath, context.Request.Headers[WebhookSignature.IdHeader] ?? "",
                    context.Request.Headers[WebhookSignature.Header], body.ToArray()));
                context.Response.StatusCode = 200;
                context.Response.Close();
            }
            catch (Exception exception) when (exception is HttpListenerException or IOException or ObjectDisposedException)
            {
                // the sender gave up on this request (its timeout); it sends the event again, and the next one is served
            }
        }
    }

    public void Dispose()
    {
        listener.Stop();
        listener.Close();
        try
        {
            serving.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
            // stopping: what it served is recorded; a fault here must not hide the test's own result
        }
    }
}

using System.Net;
using System.Net.Sockets;

namespace Payments.Testing;

/// <summary>A TCP forwarder on 127.0.0.1 that a test can cut: <see cref="Cut"/> drops every open connection and
/// refuses new ones (a network partition between one region and a dependency), <see cref="Restore"/> heals it.</summary>
public sealed class TcpProxy : IAsyncDisposable
{
    public const int MaxConnections = 256;
    private readonly TcpListener listener = new(IPAddress.Loopback, 0);
    private readonly int targetPort;
    private readonly CancellationTokenSource stop = new();
    private readonly List<TcpClient> open = [];
    private readonly Task acceptLoop;
    private volatile bool cut;

    public TcpProxy(int targetPort)
    {
        this.targetPort = targetPort;
        listener.Start();
        acceptLoop = AcceptAsync();
    }

    public int Port => ((IPEndPoint)listener.LocalEndpoint).Port;

    public void Cut()
    {
        cut = true;
        lock (open)
        {
            foreach (var client in open)
            {
                client.Dispose();
            }

            open.Clear();
        }
    }

    public void Restore() => cut = false;

    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync();
        listener.Stop();
        Cut();
        try
        {
            await acceptLoop;
        }
        catch (Exception exception) when (exception is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // stopped
        }

        stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!stop.IsCancellationRequested)
        {
            var inbound = await listener.AcceptTcpClientAsync(stop.Token);
            var outbound = new TcpClient();
            bool refuse;
            lock (open)
            {
                // Checked and registered under one lock: a connection accepted as Cut runs is refused or dropped by it.
                refuse = cut || open.Count >= MaxConnections;
                if (!refuse)
                {
                    open.Add(inbound);
                    open.Add(outbound);
                }
            }

            if (refuse)
            {
                inbound.Dispose();
                outbound.Dispose();
                continue;
            }

            _ = ForwardAsync(inbound, outbound);
        }
    }

    private async Task ForwardAsync(TcpClient inbound, TcpClient outbound)
    {
        try
        {
            await outbound.ConnectAsync(IPAddress.Loopback, targetPort, stop.Token);
            await Task.WhenAny(
                inbound.GetStream().CopyToAsync(outbound.GetStream(), stop.Token),
                outbound.GetStream().CopyToAsync(inbound.GetStream(), stop.Token));
        }
        catch (Exception exception) when (exception is IOException or SocketException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
        {
            // a cut, or either side closed
        }
        finally
        {
            // Closed connections leave the count, else a proxy refused every connection after its 128th.
            lock (open)
            {
                open.Remove(inbound);
                open.Remove(outbound);
            }

            inbound.Dispose();
            outbound.Dispose();
        }
    }
}

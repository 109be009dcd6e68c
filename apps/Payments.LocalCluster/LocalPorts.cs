using System.Net;
using System.Net.Sockets;

namespace Payments.LocalCluster;

/// <summary>Free TCP ports on 127.0.0.1 for the local processes and containers of development and tests.</summary>
public static class LocalPorts
{
    public static int Free() => Free(1)[0];

    public static int[] Free(int count)
    {
        // Hold every listener until all ports are chosen, so the same port is not handed out twice.
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToArray();
        try
        {
            foreach (var listener in listeners)
            {
                listener.Start();
            }

            return listeners.Select(listener => ((IPEndPoint)listener.LocalEndpoint).Port).ToArray();
        }
        finally
        {
            foreach (var listener in listeners)
            {
                listener.Stop();
            }
        }
    }
}

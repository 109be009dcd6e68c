using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Payments.LocalCluster;

/// <summary>Free TCP ports on 127.0.0.1 for the local processes and containers of development and tests.</summary>
/// <remarks>A port is chosen, released, and only then bound by the process or container that needs it. In that gap
/// another process may take it: with ports from the OS (bind to port 0) a parallel test process got the same port for
/// its own server, and a workflow client then spoke to that server instead of its sidecar (HTTP/2 PROTOCOL_ERROR, then
/// a hung test run). So ports come from one counter shared by every process on the machine (a file under a lock): a
/// port is handed out again only after <see cref="PortCount"/> others. And they lie below the OS's ephemeral range
/// (Linux 32768–60999, macOS and Windows 49152–65535), where outgoing connections take their source ports.</remarks>
public static class LocalPorts
{
    public const int FirstPort = 20_000;

    /// <summary>How many ports the counter cycles through.</summary>
    public const int PortCount = 12_000;

    /// <summary>Ports tried per call before giving up (the ones in use are skipped).</summary>
    public const int MaxAttempts = 1_000;

    /// <summary>How long a call waits for another process's turn at the counter.</summary>
    public static readonly TimeSpan LockTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Per user: another user's file would not be writable (a shared /tmp), and each user's processes share theirs.</summary>
    private static readonly string CounterFile = Path.Combine(Path.GetTempPath(), $"daprpayments-local-ports-{Environment.UserName}.next");

    public static int Free() => Free(1)[0];

    public static int[] Free(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        using var counter = OpenCounter();
        var next = ReadNext(counter);
        // Hold every listener until all ports are chosen, so the same port is not handed out twice in one call.
        var listeners = new List<TcpListener>(count);
        try
        {
            for (var attempt = 0; listeners.Count < count; attempt++)
            {
                if (attempt == MaxAttempts)
                {
                    throw new InvalidOperationException($"No free port among {MaxAttempts} tried from {FirstPort + next}.");
                }

                var listener = new TcpListener(IPAddress.Loopback, FirstPort + next);
                next = (next + 1) % PortCount;
                try
                {
                    listener.Start();
                    listeners.Add(listener);
                }
                catch (SocketException)
                {
                    listener.Dispose(); // in use: the next one
                }
            }

            WriteNext(counter, next);
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

    /// <summary>The counter file, opened exclusively (an advisory lock every process of ours honours), waiting a
    /// bounded time for another process's turn.</summary>
    private static FileStream OpenCounter()
    {
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return new FileStream(CounterFile, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException exception) when (exception is not (DirectoryNotFoundException or PathTooLongException) && waited.Elapsed < LockTimeout)
            {
                Thread.Sleep(TimeSpan.FromMilliseconds(5));
            }
        }
    }

    private static int ReadNext(FileStream counter)
    {
        using var reader = new StreamReader(counter, leaveOpen: true);
        return int.TryParse(reader.ReadToEnd().Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var next) && next is >= 0 and < PortCount
            ? next
            : Random.Shared.Next(PortCount); // a new counter starts anywhere: ports a crashed run left bound are skipped anyway
    }

    private static void WriteNext(FileStream counter, int next)
    {
        counter.SetLength(0);
        counter.Position = 0;
        using var writer = new StreamWriter(counter, leaveOpen: true);
        writer.Write(next.ToString(CultureInfo.InvariantCulture));
    }
}

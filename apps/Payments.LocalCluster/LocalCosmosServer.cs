using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Payments.LocalCluster;

/// <summary>The local Cosmos DB-compatible server (npm <c>@zeit/cosmosdb-server</c>, installed into
/// <c>.artifacts/tools/cosmosdb-server</c> by <c>scripts/ensure-tools.sh</c>): HTTPS with a self-signed certificate,
/// any key, in memory. It stands in for the geo-replicated Cosmos account where no emulator can run; the code talks to
/// it exactly as to the real service (point operations and ETags only). Development and tests only.</summary>
public sealed class LocalCosmosServer : IAsyncDisposable
{
    /// <summary>The well-known emulator key; this server accepts any key.</summary>
    public const string Key = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";
    public static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(30);
    private readonly Process process;

    private LocalCosmosServer(Process process, string host, int port)
    {
        this.process = process;
        Host = host;
        Port = port;
    }

    /// <summary>The address it listens on: loopback, or a Docker network's gateway for containers on that network.</summary>
    public string Host { get; }

    public int Port { get; }

    public Uri Endpoint => new($"https://{Host}:{Port}/");

    public static Task<LocalCosmosServer> StartAsync(CancellationToken cancellationToken) => StartAsync("127.0.0.1", cancellationToken);

    public static async Task<LocalCosmosServer> StartAsync(string host, CancellationToken cancellationToken)
    {
        var script = FindServerScript();
        var port = LocalPorts.Free();
        var start = new ProcessStartInfo("node") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[] { script, "--host", host, "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture) })
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start node.");
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, line) =>
        {
            if (line.Data?.Contains("Ready to accept", StringComparison.Ordinal) == true)
            {
                ready.TrySetResult();
            }
        };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new LocalCosmosServer(process, host, port);
        try
        {
            await ready.Task.WaitAsync(ReadyTimeout, cancellationToken);
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        }

        process.Dispose();
    }

    private static string FindServerScript()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var candidate = Path.Combine(directory.FullName, ".artifacts", "tools", "cosmosdb-server", "node_modules", "@zeit", "cosmosdb-server", "lib", "cli.js");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException("The local Cosmos DB-compatible server is not installed: run scripts/ensure-tools.sh (the run and test commands do).");
    }

}

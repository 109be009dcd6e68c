using System.Diagnostics;
using Xunit;
using Payments.LocalCluster;

namespace Payments.Testing;

/// <summary>The development workflow sidecar as a separate process, the way daprd runs beside an app.</summary>
public sealed class SidecarProcess : IAsyncLifetime
{
    /// <summary>Long: on CI's 2 cores with every suite starting at once a dotnet process was seen to write its first line
    /// 77 s after it started (ContainerSystem); this bound only ends a start that failed, a good one returns at once.</summary>
    public static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(4);
    private Process? process;

    public const int MaxLogLines = 2_000;
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> log = new();
    private readonly TaskCompletionSource listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public int Port { get; private set; }

    /// <summary>The sidecar's recent output, for test failure messages.</summary>
    public string RecentLog => string.Join('\n', log);

    public string Endpoint => $"http://127.0.0.1:{Port}";

    /// <summary>The sidecar's API token (daprd's <c>DAPR_API_TOKEN</c>): its clients present it, as apps present
    /// theirs to daprd.</summary>
    public string ApiToken { get; } = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));

    public async Task InitializeAsync()
    {
        Port = LocalPorts.Free();
        var start = new ProcessStartInfo("dotnet")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Payments.WorkflowSidecar.dll"));
        start.ArgumentList.Add("--port");
        start.ArgumentList.Add(Port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        start.Environment["Logging__LogLevel__Default"] = "Information";
        start.Environment["Logging__LogLevel__Microsoft.AspNetCore"] = "Warning";
        start.Environment["DAPR_API_TOKEN"] = ApiToken;
        process = Process.Start(start) ?? throw new InvalidOperationException("Could not start the workflow sidecar.");
        // Keep its output (bounded) for failure messages, and drain it so it never blocks on a full pipe.
        process.OutputDataReceived += (_, line) => Remember(line.Data);
        process.ErrorDataReceived += (_, line) => Remember(line.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        await WaitForPortAsync();
    }

    public async Task DisposeAsync()
    {
        if (process is { HasExited: false })
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        process?.Dispose();
    }

    private void Remember(string? line)
    {
        if (line is null)
        {
            return;
        }

        if (line.Contains($"Now listening on: http://127.0.0.1:{Port}", StringComparison.Ordinal))
        {
            listening.TrySetResult();
        }

        log.Enqueue(line);
        while (log.Count > MaxLogLines && log.TryDequeue(out _))
        {
        }
    }

    /// <summary>Until the sidecar says it listens on its port (ASP.NET's own line, after the bind): a connection alone
    /// could reach another process that holds the port, when the sidecar's bind failed.</summary>
    private async Task WaitForPortAsync()
    {
        var waited = Stopwatch.StartNew();
        while (!listening.Task.IsCompleted)
        {
            if (process!.HasExited is var exited && (exited || waited.Elapsed > StartTimeout))
            {
                await DisposeAsync(); // a sidecar that never listened is not left running
                throw new InvalidOperationException(
                    $"The workflow sidecar did not listen on port {Port} within {StartTimeout} (exited: {exited}). Its log:\n{RecentLog}");
            }

            await Task.WhenAny(listening.Task, Task.Delay(TimeSpan.FromMilliseconds(100)));
        }
    }

}

using System.Diagnostics;
using System.Net.Sockets;
using Payments.LocalCluster;

namespace Payments.Local.Hosting;

/// <summary>One app of the local system as its own process (<c>dotnet App.dll</c>), its output in a log file,
/// stopped with its whole process tree.</summary>
public sealed class ChildProcess : IAsyncDisposable
{
    public static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);
    private readonly Process process;
    private readonly StartSpec spec;
    private (Uri Url, bool TcpOnly)? readyProbe;

    private ChildProcess(string name, Process process, string logPath, StartSpec spec)
    {
        Name = name;
        this.process = process;
        LogPath = logPath;
        this.spec = spec;
    }

    /// <summary>What the process was started with: a restart uses the same command line, as Kubernetes restarts a pod.</summary>
    private sealed record StartSpec(string Assembly, IReadOnlyList<string> Arguments, IReadOnlyDictionary<string, string> Environment, string LogDirectory);

    public string Name { get; }

    public string LogPath { get; }

    public int ProcessId => process.Id;

    public bool HasExited => process.HasExited;

    public static ChildProcess Start(string name, string assembly, IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string> environment, string logDirectory)
    {
        var logPath = Path.Combine(logDirectory, name + ".log");
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, assembly));
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {name}.");
        var log = new StreamWriter(logPath, append: true) { AutoFlush = true };
        process.OutputDataReceived += (_, line) => Write(log, line.Data);
        process.ErrorDataReceived += (_, line) => Write(log, line.Data);
        process.Exited += (_, _) => log.Dispose();
        process.EnableRaisingEvents = true;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new ChildProcess(name, process, logPath, new StartSpec(assembly, arguments, environment, logDirectory));
    }

    /// <summary>SIGKILLs this process (if it still runs) and starts it again with the same command line, waiting for
    /// the same readiness as its first start. The new process replaces this one.</summary>
    public async Task<ChildProcess> RestartAsync(CancellationToken cancellationToken)
    {
        await KillAsync();
        var restarted = Start(Name, spec.Assembly, spec.Arguments, spec.Environment, spec.LogDirectory);
        if (readyProbe is { } probe)
        {
            await restarted.WaitReadyAsync(probe.Url, probe.TcpOnly, cancellationToken);
        }

        return restarted;
    }

    /// <summary>Polls (bounded) until the app answers 200 on <paramref name="readyUrl"/>, or its TCP port accepts.</summary>
    public async Task WaitReadyAsync(Uri readyUrl, bool tcpOnly, CancellationToken cancellationToken)
    {
        readyProbe = (readyUrl, tcpOnly);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var waited = Stopwatch.StartNew();
        while (true)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"{Name} exited with code {process.ExitCode}; see {LogPath}.");
            }

            try
            {
                if (tcpOnly)
                {
                    // Bounded like the HTTP probe's request: a connect to a frozen listener can wait for the kernel's
                    // SYN retries (minutes), past the readiness bound.
                    using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                    attempt.CancelAfter(http.Timeout);
                    using var tcp = new TcpClient();
                    await tcp.ConnectAsync(readyUrl.Host, readyUrl.Port, attempt.Token);
                    return;
                }

                if ((await http.GetAsync(readyUrl, cancellationToken)).IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (Exception exception) when (exception is HttpRequestException or SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                // Not listening yet.
            }

            if (waited.Elapsed > ReadyTimeout)
            {
                throw new TimeoutException($"{Name} was not ready within {ReadyTimeout.TotalSeconds} s; see {LogPath}.");
            }

            await Task.Delay(PollInterval, cancellationToken);
        }
    }

    /// <summary>True between <see cref="Pause"/> and <see cref="Resume"/>.</summary>
    public bool IsPaused { get; private set; }

    /// <summary>SIGSTOP: a frozen process (GC pause, stalled VM) whose connections stay open but silent.</summary>
    public void Pause()
    {
        NativeSignals.Send(process.Id, NativeSignals.SigStop);
        IsPaused = true;
    }

    /// <summary>SIGCONT: the frozen process goes on where it stopped.</summary>
    public void Resume()
    {
        NativeSignals.Send(process.Id, NativeSignals.SigCont);
        IsPaused = false;
    }

    /// <summary>SIGKILL: a crash, for the fault tests.</summary>
    public async Task KillAsync()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        process.Dispose();
    }

    private static void Write(StreamWriter log, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (log)
        {
            try
            {
                log.WriteLine(line);
            }
            catch (ObjectDisposedException)
            {
                // The process exited while its last lines were in flight.
            }
        }
    }
}

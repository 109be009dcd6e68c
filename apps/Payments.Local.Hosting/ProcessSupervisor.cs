using System.Collections.Concurrent;
using System.Diagnostics;

namespace Payments.Local.Hosting;

/// <summary>Keeps the local system's processes running as Kubernetes keeps pods running: an app or etcd member that
/// exited is started again with the same command line after a backoff (doubling per crash in a row, capped, reset once
/// it has stayed up), and each restart is reported. Frozen processes are not its business: clients route around them
/// (the edge's health checks, the services' timeouts, the etcd connection's member failover).</summary>
public sealed class ProcessSupervisor : IAsyncDisposable
{
    public static readonly TimeSpan CheckInterval = TimeSpan.FromMilliseconds(500);

    /// <summary>The first restart's delay: about Kubernetes' first back-off, shortened for one machine.</summary>
    public static readonly TimeSpan InitialBackoff = TimeSpan.FromSeconds(3);

    public static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);

    /// <summary>A process up this long after its restart starts again from <see cref="InitialBackoff"/>.</summary>
    public static readonly TimeSpan HealthyAfter = TimeSpan.FromSeconds(60);

    private readonly LocalSystem system;
    private readonly Action<string> report;
    private readonly CancellationTokenSource stop = new();
    private readonly ConcurrentDictionary<string, (int Crashes, Stopwatch Since)> history = new(StringComparer.Ordinal);
    private readonly Task loop;
    private int restarts;

    public ProcessSupervisor(LocalSystem system, Action<string> report)
    {
        this.system = system;
        this.report = report;
        loop = Task.Run(() => WatchAsync(stop.Token));
    }

    /// <summary>Restarts so far.</summary>
    public int Restarts => Volatile.Read(ref restarts);

    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync();
        await loop;
        stop.Dispose();
    }

    private async Task WatchAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                foreach (var name in system.ExitedApps())
                {
                    await RestartAfterBackoffAsync(name, () => system.RestartAsync(name, cancellationToken), cancellationToken);
                }

                for (var member = 0; member < system.Cluster.Members.Count; member++)
                {
                    if (!system.Cluster.Members[member].IsRunning)
                    {
                        var index = member;
                        await RestartAfterBackoffAsync($"etcd m{index}", () =>
                        {
                            system.Cluster.Restart(index);
                            return Task.CompletedTask;
                        }, cancellationToken);
                    }
                }

                await Task.Delay(CheckInterval, cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                // A restart that failed (a port taken, a start that timed out) must not end supervision: try again.
                report($"supervisor: a restart failed ({exception.Message}); trying again");
            }
        }
    }

    private async Task RestartAfterBackoffAsync(string name, Func<Task> restart, CancellationToken cancellationToken)
    {
        var (crashes, since) = history.GetValueOrDefault(name, (0, Stopwatch.StartNew()));
        crashes = since.Elapsed > HealthyAfter ? 1 : crashes + 1;
        var backoff = TimeSpan.FromTicks(Math.Min(MaxBackoff.Ticks, InitialBackoff.Ticks << Math.Min(crashes - 1, 8)));
        report($"supervisor: {name} exited; restarting it in {backoff.TotalSeconds:F0} s (crash {crashes} in a row)");
        await Task.Delay(backoff, cancellationToken);
        await restart();
        history[name] = (crashes, Stopwatch.StartNew());
        Interlocked.Increment(ref restarts);
        report($"supervisor: {name} restarted");
    }
}

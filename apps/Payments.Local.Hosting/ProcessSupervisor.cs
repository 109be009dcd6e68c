using System.Collections.Concurrent;
using System.Diagnostics;

namespace Payments.Local.Hosting;

/// <summary>Keeps the local system's processes running as Kubernetes keeps pods running: an app or etcd member that
/// exited is started again with the same command line after a backoff (doubling per crash in a row, capped, reset once
/// it has stayed up), each on its own (one process's back-off never delays another's restart), and each restart is
/// reported. A process killed from outside on purpose (<see cref="ExpectKill"/>: the fault campaign, as a node loss or
/// an eviction) is replaced after the first back-off, as a Deployment replaces a deleted pod, not counted as a crash.
/// Frozen processes are not its business: clients route around them (the edge's health checks, the services'
/// timeouts, the etcd connection's member failover).</summary>
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
    private readonly ConcurrentDictionary<string, Task> restarting = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, bool> killedOnPurpose = new(StringComparer.Ordinal);
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

    /// <summary>The next exit of <paramref name="name"/> (an app's name, or <c>etcd m{index}</c>) is a kill from
    /// outside: replace it after <see cref="InitialBackoff"/> and do not count it as a crash.</summary>
    public void ExpectKill(string name) => killedOnPurpose[name] = true;

    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync();
        await loop;
        await Task.WhenAll(restarting.Values);
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
                    Begin(name, () => system.RestartAsync(name, cancellationToken), cancellationToken);
                }

                for (var member = 0; member < system.Cluster.Members.Count; member++)
                {
                    if (!system.Cluster.Members[member].IsRunning)
                    {
                        var index = member;
                        Begin($"etcd m{index}", () =>
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

    /// <summary>Starts the restart of <paramref name="name"/> unless one is already under way (at most one per process).</summary>
    private void Begin(string name, Func<Task> restart, CancellationToken cancellationToken)
    {
        if (restarting.ContainsKey(name))
        {
            return;
        }

        restarting[name] = Task.Run(async () =>
        {
            try
            {
                await RestartAfterBackoffAsync(name, restart, cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                // stopping
            }
            catch (Exception exception)
            {
                // A restart that failed (a port taken, a start that timed out) must not end supervision: the next
                // check finds the process still down and tries again.
                report($"supervisor: restarting {name} failed ({exception.Message}); trying again");
            }
            finally
            {
                restarting.TryRemove(name, out _);
            }
        }, CancellationToken.None);
    }

    private async Task RestartAfterBackoffAsync(string name, Func<Task> restart, CancellationToken cancellationToken)
    {
        var (crashes, since) = history.GetValueOrDefault(name, (0, Stopwatch.StartNew()));
        var onPurpose = killedOnPurpose.TryRemove(name, out _);
        crashes = onPurpose ? crashes : since.Elapsed > HealthyAfter ? 1 : crashes + 1;
        var backoff = onPurpose
            ? InitialBackoff
            : TimeSpan.FromTicks(Math.Min(MaxBackoff.Ticks, InitialBackoff.Ticks << Math.Min(Math.Max(crashes, 1) - 1, 8)));
        report(onPurpose
            ? $"supervisor: {name} was killed; replacing it in {backoff.TotalSeconds:F0} s"
            : $"supervisor: {name} exited; restarting it in {backoff.TotalSeconds:F0} s (crash {crashes} in a row)");
        await Task.Delay(backoff, cancellationToken);
        await restart();
        history[name] = (crashes, Stopwatch.StartNew());
        Interlocked.Increment(ref restarts);
        report($"supervisor: {name} restarted");
    }
}

namespace Payments.Local.Hosting.Chaos;

/// <summary>One fault at a time on a random process of a supervised <see cref="LocalSystem"/>: a SIGKILL (the
/// supervisor replaces the process after its first back-off, as a Deployment replaces a killed pod) or a SIGSTOP for
/// <see cref="PauseDuration"/> then SIGCONT (a frozen process whose connections stay open). Targets: every etcd member
/// (the leader included), the ledger, etcd's storage maintenance, risk, the orchestrator, an API replica, the edge and
/// the workflow sidecar. A
/// target is chosen only while it is up, and an etcd member only while the others are (the campaign tests riding out
/// faults, not losing the quorum for good).</summary>
public sealed class FaultInjector(LocalSystem system, Random random, Action<string> report)
{
    public static readonly TimeSpan PauseDuration = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan LeaderLookupTimeout = TimeSpan.FromSeconds(2);

    /// <summary>The apps the campaign faults (the second API replica stays up: the edge must have somewhere to go).</summary>
    public static readonly IReadOnlyList<string> Apps = ["ledger", LocalSystem.EtcdMaintenanceApp, "risk", "orchestrator", "api-0", "edge", "workflow-sidecar"];

    /// <summary>How an etcd member's target name starts ("etcd m0"; the maintenance app's name starts with "etcd" too).</summary>
    private const string MemberPrefix = "etcd m";

    private readonly HashSet<string> busy = new(StringComparer.Ordinal);

    /// <summary>Faults injected so far, by description.</summary>
    public List<string> Injected { get; } = [];

    /// <summary>Starts one fault (a pause runs on in the background until it ends); null when no target was up.</summary>
    public async Task<string?> InjectAsync(CancellationToken cancellationToken)
    {
        var targets = Apps.Where(AppIsUp).Concat(EtcdMembersUp()).Where(target => !IsBusy(target)).ToArray();
        if (targets.Length == 0)
        {
            return null;
        }

        var target = targets[random.Next(targets.Length)];
        var pause = random.Next(2) == 0;
        var leader = target.StartsWith(MemberPrefix, StringComparison.Ordinal) && await IsLeaderAsync(target, cancellationToken);
        var description = $"{(pause ? "SIGSTOP" : "SIGKILL")} {target}{(leader ? " (leader)" : string.Empty)}";
        lock (busy)
        {
            busy.Add(target);
        }

        _ = Task.Run(() => ApplyAsync(target, pause));
        Injected.Add(description);
        report($"fault {Injected.Count}: {description}");
        return description;
    }

    /// <summary>Waits (bounded) until every paused process runs again; killed ones are the supervisor's to restart.</summary>
    public async Task SettleAsync(CancellationToken cancellationToken)
    {
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (IsAnyBusy() && waited.Elapsed < PauseDuration * 4)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken);
        }
    }

    private async Task ApplyAsync(string target, bool pause)
    {
        try
        {
            if (target.StartsWith(MemberPrefix, StringComparison.Ordinal))
            {
                await ApplyToEtcdAsync(int.Parse(target[MemberPrefix.Length..], System.Globalization.CultureInfo.InvariantCulture), pause);
            }
            else if (pause)
            {
                var app = system.App(target);
                app.Pause();
                await Task.Delay(PauseDuration);
                app.Resume();
            }
            else
            {
                system.Supervisor?.ExpectKill(target);
                await system.App(target).KillAsync();
            }
        }
        catch (InvalidOperationException exception)
        {
            report($"fault on {target} did not apply ({exception.Message})"); // the process exited meanwhile
        }
        finally
        {
            lock (busy)
            {
                busy.Remove(target);
            }
        }
    }

    private async Task ApplyToEtcdAsync(int member, bool pause)
    {
        if (pause)
        {
            system.Cluster.Pause(member);
            await Task.Delay(PauseDuration);
            system.Cluster.Resume(member);
        }
        else
        {
            system.Supervisor?.ExpectKill($"etcd m{member}");
            await system.Cluster.KillAsync(member);
        }
    }

    private bool AppIsUp(string name) => system.App(name) is { HasExited: false, IsPaused: false };

    private IEnumerable<string> EtcdMembersUp()
    {
        var members = system.Cluster.Members;
        var allUp = members.All(member => member is { IsRunning: true, IsPaused: false }) && !IsAnyBusyEtcd();
        return allUp ? members.Select(member => $"etcd {member.Name}") : [];
    }

    private async Task<bool> IsLeaderAsync(string target, CancellationToken cancellationToken)
    {
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bounded.CancelAfter(LeaderLookupTimeout);
        try
        {
            return $"etcd m{await system.Cluster.LeaderIndexAsync(bounded.Token)}" == target;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false; // no leader right now: the fault is described without it
        }
    }

    private bool IsBusy(string target)
    {
        lock (busy)
        {
            return busy.Contains(target);
        }
    }

    private bool IsAnyBusy()
    {
        lock (busy)
        {
            return busy.Count > 0;
        }
    }

    private bool IsAnyBusyEtcd()
    {
        lock (busy)
        {
            return busy.Any(target => target.StartsWith(MemberPrefix, StringComparison.Ordinal));
        }
    }
}

using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using dotnet_etcd;
using Etcdserverpb;
using Payments.Etcd;

namespace Payments.LocalCluster;

/// <summary>An N-member etcd cluster of real etcd processes on 127.0.0.1, for development, tests and benchmarks.</summary>
/// <remarks>Each member gets free ports and its own data directory under one cluster directory. A cluster whose
/// owning process died (a crashed test run) is found by its owner pid file and cleaned up by the next start, so
/// no etcd process or directory outlives its owner for long.</remarks>
public sealed class LocalEtcdCluster : IAsyncDisposable
{
    public static readonly TimeSpan LeaderWaitTimeout = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan StatusCallTimeout = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan ExitWaitTimeout = TimeSpan.FromSeconds(10);
    private const int MaxMembers = 7;
    private const int MaxStartAttempts = 3;
    private const string OwnerFile = "owner.pid";

    private readonly EtcdMember[] members;
    private readonly Action<string>? progress;

    private LocalEtcdCluster(string directory, EtcdMember[] members, Action<string>? progress, EtcdCertificates? certificates, EtcdTls? rootTls)
    {
        Directory = directory;
        Certificates = certificates;
        RootTls = rootTls;
        this.members = members;
        this.progress = progress;
    }

    public static string RootDirectory { get; } = Path.Combine(Path.GetTempPath(), "daprpayments-etcd");

    /// <summary>The cluster's own folder: one data directory and one log file per member.</summary>
    public string Directory { get; }

    public IReadOnlyList<EtcdMember> Members => members;

    /// <summary>The sum over the running members of a counter from their /metrics (Prometheus text), over the series
    /// whose labels contain every one of <paramref name="labels"/> (e.g. <c>grpc_method="Range"</c>): what etcd did,
    /// counted by etcd.</summary>
    public async Task<double> SumMetricAsync(string metric, IReadOnlyCollection<string> labels, CancellationToken cancellationToken) =>
        SumMetric(await MetricsAsync(cancellationToken), metric, labels);

    /// <summary>Every running member's /metrics page (Prometheus text), fetched once: for summing several series of
    /// one moment with <see cref="SumMetric"/>.</summary>
    public async Task<IReadOnlyList<string>> MetricsAsync(CancellationToken cancellationToken)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var pages = new List<string>();
        foreach (var member in members.Where(member => member.IsRunning && !member.IsPaused && member.MetricsUrl is not null))
        {
            pages.Add(await http.GetStringAsync(member.MetricsUrl, cancellationToken));
        }

        return pages;
    }

    /// <summary>The sum of a counter over <paramref name="pages"/> (from <see cref="MetricsAsync"/>), over the series
    /// whose labels contain every one of <paramref name="labels"/> (with none: every series, a counter without labels
    /// too).</summary>
    public static double SumMetric(IReadOnlyList<string> pages, string metric, IReadOnlyCollection<string> labels)
    {
        ArgumentNullException.ThrowIfNull(pages);
        ArgumentNullException.ThrowIfNull(labels);
        double sum = 0;
        foreach (var line in pages.SelectMany(page => page.Split('\n')))
        {
            var series = line.StartsWith(metric + "{", StringComparison.Ordinal) || (labels.Count == 0 && line.StartsWith(metric + " ", StringComparison.Ordinal));
            if (series && labels.All(label => line.Contains(label, StringComparison.Ordinal)))
            {
                sum += double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
            }
        }

        return sum;
    }

    /// <summary>The cluster's CA and certificates when it runs with TLS (<c>secure</c> at start), else null.</summary>
    public EtcdCertificates? Certificates { get; }

    /// <summary>TLS as etcd's root user (every right: set-up, maintenance, checks), or null without TLS.</summary>
    public EtcdTls? RootTls { get; }

    /// <summary>A connection with every right: root's certificate on a secure cluster, plaintext otherwise.</summary>
    public EtcdConnection ConnectAsRoot() => EtcdConnection.Create(ClientEndpoints, RootTls);

    /// <summary>Turns on etcd's authentication with <paramref name="roles"/> (and grants more on a cluster where it is
    /// on already): from then on each client is the user its certificate names, limited to that user's prefixes.</summary>
    public async Task EnableAuthAsync(IReadOnlyList<EtcdRole> roles, CancellationToken cancellationToken)
    {
        if (Certificates is null)
        {
            throw new InvalidOperationException("Authentication needs a secure cluster (client certificates name the users): start it with secure: true.");
        }

        using var root = ConnectAsRoot();
        await EtcdRbac.EnableAsync(root, roles, cancellationToken);
    }

    /// <summary>The <c>Payments</c> settings (<see cref="EtcdOptions"/>) of a client that is etcd user
    /// <paramref name="user"/>: the endpoints, and on a secure cluster the CA and that user's certificate; with
    /// <paramref name="maintenance"/> also the maintenance user's certificate. Null user on a secure cluster: no
    /// certificate at all (an app that must not reach etcd).</summary>
    public IReadOnlyDictionary<string, string> ClientSettings(string? user, bool maintenance = false)
    {
        var settings = new Dictionary<string, string> { [$"{EtcdOptions.Section}:EtcdEndpoints"] = ClientEndpoints };
        if (Certificates is { } certificates && user is not null)
        {
            var tls = certificates.Client(user);
            settings[$"{EtcdOptions.Section}:EtcdCaFile"] = tls.CaFile;
            settings[$"{EtcdOptions.Section}:EtcdCertFile"] = tls.CertFile;
            settings[$"{EtcdOptions.Section}:EtcdKeyFile"] = tls.KeyFile;
            if (maintenance)
            {
                var admin = certificates.Client(EtcdRbac.Maintenance);
                settings[$"{EtcdOptions.Section}:EtcdMaintenanceCertFile"] = admin.CertFile;
                settings[$"{EtcdOptions.Section}:EtcdMaintenanceKeyFile"] = admin.KeyFile;
            }
        }

        return settings;
    }

    /// <summary>Every member's client URL, comma-separated, as <see cref="EtcdConnection"/> takes them.</summary>
    public string ClientEndpoints => string.Join(',', members.Select(member => member.ClientUrl));

    /// <summary>Starts <paramref name="memberCount"/> members together (a member reports ready only once a
    /// majority is up) and waits, bounded, until the cluster has a leader.</summary>
    /// <param name="storage">The members' quota and compaction (null: <see cref="EtcdStorage.Default"/>).</param>
    /// <param name="secure">Client and peer TLS with client-certificate authentication (certificates made at start):
    /// the default, as every deployment runs; false only for a test about plaintext itself.</param>
    public static async Task<LocalEtcdCluster> StartAsync(
        int memberCount, Action<string>? progress, CancellationToken cancellationToken, EtcdStorage? storage = null, bool secure = true)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(memberCount, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(memberCount, MaxMembers);
        var etcdPath = await EtcdInstaller.EnsureInstalledAsync(progress, cancellationToken);
        CleanUpOrphans(progress);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await StartOnceAsync(memberCount, etcdPath, storage ?? EtcdStorage.Default, secure, progress, cancellationToken);
            }
            catch (MemberExitedException exception) when (attempt < MaxStartAttempts)
            {
                // Free ports are chosen, released, then bound by etcd: another process can take one in between.
                progress?.Invoke($"{exception.Message}; starting again on other ports (attempt {attempt + 1} of {MaxStartAttempts})");
            }
        }
    }

    private static async Task<LocalEtcdCluster> StartOnceAsync(
        int memberCount, string etcdPath, EtcdStorage storage, bool secure, Action<string>? progress, CancellationToken cancellationToken)
    {
        var clusterName = $"c{Environment.ProcessId}-{Guid.NewGuid():N}"[..24];
        var directory = Path.Combine(RootDirectory, clusterName);
        System.IO.Directory.CreateDirectory(directory);
        await File.WriteAllTextAsync(
            Path.Combine(directory, OwnerFile), Environment.ProcessId.ToString(CultureInfo.InvariantCulture), cancellationToken);

        var certificates = secure ? EtcdCertificates.Create(directory) : null;
        var rootTls = certificates?.Client(EtcdRbac.Root);
        var ports = LocalPorts.Free(memberCount * 3);
        var initialCluster = string.Join(',', Enumerable.Range(0, memberCount)
            .Select(index => $"m{index}={(secure ? "https" : "http")}://127.0.0.1:{ports[(index * 3) + 1]}"));
        var members = Enumerable.Range(0, memberCount)
            .Select(index => new EtcdMember(
                index, etcdPath, directory, ports[index * 3], ports[(index * 3) + 1], initialCluster, clusterName, storage, certificates, rootTls)
            {
                MetricsPort = ports[(index * 3) + 2],
            })
            .ToArray();

        var cluster = new LocalEtcdCluster(directory, members, progress, certificates, rootTls);
        try
        {
            progress?.Invoke($"Starting a {memberCount}-member etcd cluster in {directory}…");
            foreach (var member in members)
            {
                member.Start();
            }

            var leader = await cluster.WaitForLeaderAsync(cancellationToken, failIfAMemberExits: true);
            progress?.Invoke($"etcd cluster ready: {cluster.ClientEndpoints} (leader m{leader})");
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>Waits, bounded by <see cref="LeaderWaitTimeout"/>, until the running members agree on a leader
    /// that is itself running and responsive; returns that member's index.</summary>
    public Task<int> WaitForLeaderAsync(CancellationToken cancellationToken) => WaitForLeaderAsync(cancellationToken, failIfAMemberExits: false);

    private async Task<int> WaitForLeaderAsync(CancellationToken cancellationToken, bool failIfAMemberExits)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(LeaderWaitTimeout);
        string lastProblem = "no member answered yet";
        while (true)
        {
            if (failIfAMemberExits && members.FirstOrDefault(member => !member.IsRunning) is { } exited)
            {
                throw new MemberExitedException($"etcd member {exited.Name} exited at start (see {exited.LogPath})");
            }

            var leader = await TryFindLeaderAsync(timeout.Token);
            if (leader.Index is { } index)
            {
                return index;
            }

            lastProblem = leader.Problem ?? lastProblem;
            try
            {
                await Task.Delay(PollInterval, timeout.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException(
                    $"etcd cluster in {Directory} had no leader within {LeaderWaitTimeout.TotalSeconds} s ({lastProblem}); see the member logs there.");
            }
        }
    }

    /// <summary>The index of the member that currently leads, as the running members report it.</summary>
    public async Task<int> LeaderIndexAsync(CancellationToken cancellationToken) => await WaitForLeaderAsync(cancellationToken);

    /// <summary>SIGKILLs a member: a crash, with no chance to step down or flush.</summary>
    public async Task KillAsync(int index) => await members[index].KillAsync(ExitWaitTimeout);

    /// <summary>Starts a killed member again on the same data directory and ports; it rejoins as a follower.</summary>
    public void Restart(int index) => members[index].Start();

    /// <summary>Waits, bounded by <see cref="LeaderWaitTimeout"/>, until member <paramref name="index"/> answers and
    /// follows a leader (one restarted has rejoined): a fault injected next must not find the quorum resting on it.</summary>
    public async Task WaitForMemberAsync(int index, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(LeaderWaitTimeout);
        try
        {
            while ((await members[index].TryStatusAsync(StatusCallTimeout, timeout.Token)) is not { Leader: not 0 })
            {
                await Task.Delay(PollInterval, timeout.Token);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"etcd member {members[index].Name} did not rejoin within {LeaderWaitTimeout.TotalSeconds} s (see {members[index].LogPath}).");
        }
    }

    /// <summary>SIGSTOPs a member: its sockets stay open but it answers nothing, like a frozen VM.</summary>
    public void Pause(int index) => members[index].Pause();

    public void Resume(int index) => members[index].Resume();

    public async ValueTask DisposeAsync()
    {
        foreach (var member in members)
        {
            await member.KillAsync(ExitWaitTimeout);
            member.Dispose();
        }

        TryDeleteDirectory(Directory);
        progress?.Invoke($"etcd cluster in {Directory} stopped and removed.");
    }

    private async Task<(int? Index, string? Problem)> TryFindLeaderAsync(CancellationToken cancellationToken)
    {
        var running = members.Where(member => member.IsRunning && !member.IsPaused).ToArray();
        var statuses = await Task.WhenAll(running.Select(member => member.TryStatusAsync(StatusCallTimeout, cancellationToken)));
        var answered = running.Zip(statuses).Where(pair => pair.Second is not null).ToArray();
        if (answered.Length * 2 <= members.Length)
        {
            return (null, $"{answered.Length} of {members.Length} members answered");
        }

        var leaderIds = answered.Select(pair => pair.Second!.Leader).Distinct().ToArray();
        if (leaderIds.Length != 1 || leaderIds[0] == 0)
        {
            return (null, "members do not agree on a leader yet");
        }

        var leader = answered.FirstOrDefault(pair => pair.Second!.Header.MemberId == leaderIds[0]);
        return leader.First is null ? (null, "the leader is not among the running members") : (leader.First.Index, null);
    }

    /// <summary>Kills the members of clusters whose owner process is gone and removes their directories.</summary>
    private static void CleanUpOrphans(Action<string>? progress)
    {
        if (!System.IO.Directory.Exists(RootDirectory))
        {
            return;
        }

        foreach (var directory in System.IO.Directory.EnumerateDirectories(RootDirectory))
        {
            // The owner's pid is part of the directory's name (c{pid}-…), so a cluster another process is creating
            // right now is never mistaken for an orphan before its owner file exists.
            if (OwnerOf(directory) is { } owner && IsAlive(owner))
            {
                continue;
            }

            foreach (var pidFile in System.IO.Directory.EnumerateFiles(directory, "*.pid").Where(path => !path.EndsWith(OwnerFile, StringComparison.Ordinal)))
            {
                if (int.TryParse(File.ReadAllText(pidFile), CultureInfo.InvariantCulture, out var pid) && IsEtcd(pid))
                {
                    TryKill(pid);
                }
            }

            progress?.Invoke($"Removed an orphaned etcd cluster left by a process that is gone: {directory}");
            TryDeleteDirectory(directory);
        }
    }

    private static bool IsAlive(int pid) => System.IO.Directory.Exists($"/proc/{pid}");

    private static int? OwnerOf(string directory)
    {
        var name = Path.GetFileName(directory);
        var dash = name.IndexOf('-', StringComparison.Ordinal);
        if (name.StartsWith('c') && dash > 1 && int.TryParse(name.AsSpan(1, dash - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var fromName))
        {
            return fromName;
        }

        var ownerPath = Path.Combine(directory, OwnerFile);
        return File.Exists(ownerPath) && int.TryParse(File.ReadAllText(ownerPath), CultureInfo.InvariantCulture, out var fromFile) ? fromFile : null;
    }

    private static bool IsEtcd(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/comm").Trim() == "etcd";
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static void TryKill(int pid)
    {
        try
        {
            NativeSignals.Send(pid, NativeSignals.SigCont);
            using var process = Process.GetProcessById(pid);
            process.Kill();
        }
        catch (Exception exception) when (exception is ArgumentException or InvalidOperationException)
        {
            // Already gone.
        }
    }

    private static void TryDeleteDirectory(string directory)
    {
        try
        {
            System.IO.Directory.Delete(directory, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
            // Already removed.
        }
    }
}

/// <summary>A member died while the cluster was starting (typically a port taken in the meantime).</summary>
internal sealed class MemberExitedException(string message) : Exception(message);

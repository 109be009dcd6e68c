using System.Diagnostics;
using System.Globalization;
using Etcdserverpb;
using Payments.Etcd;

namespace Payments.LocalCluster;

/// <summary>One etcd process of a <see cref="LocalEtcdCluster"/>.</summary>
public sealed class EtcdMember : IDisposable
{
    private readonly string etcdPath;
    private readonly string clusterDirectory;
    private readonly string initialCluster;
    private readonly string clusterToken;
    private readonly EtcdStorage storage;
    private readonly EtcdCertificates? pki;
    private readonly EtcdTls? statusTls;
    private Process? process;
    private EtcdConnection? statusConnection;

    internal EtcdMember(
        int index, string etcdPath, string clusterDirectory, int clientPort, int peerPort, string initialCluster, string clusterToken, EtcdStorage storage,
        EtcdCertificates? pki = null, EtcdTls? statusTls = null)
    {
        this.storage = storage;
        this.pki = pki;
        this.statusTls = statusTls;
        Index = index;
        this.etcdPath = etcdPath;
        this.clusterDirectory = clusterDirectory;
        this.initialCluster = initialCluster;
        this.clusterToken = clusterToken;
        ClientPort = clientPort;
        PeerPort = peerPort;
    }

    public int Index { get; }

    public string Name => $"m{Index}";

    public int ClientPort { get; }

    public int PeerPort { get; }

    /// <summary>Plain-HTTP /metrics and /health on loopback (as the chart's probes use <c>--listen-metrics-urls</c>):
    /// tests and benchmarks count etcd's requests there without a client certificate.</summary>
    public int? MetricsPort { get; init; }

    public Uri? MetricsUrl => MetricsPort is { } port ? new Uri($"http://127.0.0.1:{port}/metrics") : null;

    public string ClientUrl => $"{Scheme}://127.0.0.1:{ClientPort}";

    private string Scheme => pki is null ? "http" : "https";

    public string LogPath => Path.Combine(clusterDirectory, $"{Name}.log");

    public bool IsRunning => process is { HasExited: false };

    public bool IsPaused { get; private set; }

    internal void Start()
    {
        if (IsRunning)
        {
            throw new InvalidOperationException($"etcd member {Name} is already running.");
        }

        // exec through sh so the pid is etcd's own and its output goes straight to the log file
        // (redirecting into .NET would need a reader per stream for the member's whole life).
        var arguments = string.Join(' ',
            $"--name {Name}",
            $"--data-dir {Path.Combine(clusterDirectory, Name)}",
            $"--listen-client-urls {ClientUrl} --advertise-client-urls {ClientUrl}",
            $"--listen-peer-urls {Scheme}://127.0.0.1:{PeerPort} --initial-advertise-peer-urls {Scheme}://127.0.0.1:{PeerPort}",
            TlsFlags(),
            MetricsPort is { } metrics ? $"--listen-metrics-urls http://127.0.0.1:{metrics}" : string.Empty,
            $"--initial-cluster {initialCluster} --initial-cluster-token {clusterToken} --initial-cluster-state new",
            // Production-like timing (etcd's defaults) so failover figures mean something.
            "--heartbeat-interval 100 --election-timeout 1000",
            string.Join(' ', storage.Flags));
        var start = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add($"exec {etcdPath} {arguments} >>{LogPath} 2>&1");
        process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start etcd member {Name}.");
        IsPaused = false;
        File.WriteAllText(Path.Combine(clusterDirectory, $"{Name}.pid"), process.Id.ToString(CultureInfo.InvariantCulture));
    }

    /// <summary>Client and peer TLS, each side proving itself with a certificate from the cluster's CA.</summary>
    private string TlsFlags() => pki is null
        ? string.Empty
        : string.Join(' ',
            $"--cert-file {pki.MemberCertFile} --key-file {pki.MemberKeyFile} --client-cert-auth --trusted-ca-file {pki.CaFile}",
            $"--peer-cert-file {pki.MemberCertFile} --peer-key-file {pki.MemberKeyFile} --peer-client-cert-auth --peer-trusted-ca-file {pki.CaFile}");

    internal async Task KillAsync(TimeSpan exitWaitTimeout)
    {
        if (process is null || process.HasExited)
        {
            return;
        }

        if (IsPaused)
        {
            Resume();
        }

        process.Kill();
        using var timeout = new CancellationTokenSource(exitWaitTimeout);
        await process.WaitForExitAsync(timeout.Token);
    }

    internal void Pause()
    {
        NativeSignals.Send(RunningProcess().Id, NativeSignals.SigStop);
        IsPaused = true;
    }

    internal void Resume()
    {
        NativeSignals.Send(RunningProcess().Id, NativeSignals.SigCont);
        IsPaused = false;
    }

    /// <summary>This member's own view of the cluster (its id, the leader it follows), or null if it does not answer in time.</summary>
    public async Task<StatusResponse?> TryStatusAsync(TimeSpan callTimeout, CancellationToken cancellationToken)
    {
        // One connection to this member alone, kept for its life: leader polling asks every 100 ms.
        var connection = statusConnection ??= EtcdConnection.Create(ClientUrl, statusTls);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(callTimeout);
        try
        {
            return await connection.Client.StatusAsync(new StatusRequest(), cancellationToken: timeout.Token);
        }
        catch (Exception exception) when (exception is Grpc.Core.RpcException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return null;
        }
    }

    public void Dispose()
    {
        statusConnection?.Dispose();
        process?.Dispose();
    }

    private Process RunningProcess() =>
        process is { HasExited: false } running ? running : throw new InvalidOperationException($"etcd member {Name} is not running.");
}

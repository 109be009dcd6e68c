using System.Diagnostics;

namespace Payments.LocalCluster;

/// <summary>Makes sure the etcd server binary is present, installing Debian's etcd packages when it is not.</summary>
/// <remarks>A fresh machine of this project's kind has only the .NET SDK; the run command and the tests must
/// install what they need themselves (README's two commands). Several test processes may start at once, so
/// the install is serialised with a file lock.</remarks>
public static class EtcdInstaller
{
    public static readonly TimeSpan InstallTimeout = TimeSpan.FromMinutes(5);
    private const string LockPath = "/tmp/daprpayments-etcd-install.lock";
    private static readonly string[] Candidates = ["/usr/bin/etcd", "/usr/local/bin/etcd"];

    /// <summary>The etcd binary: <c>ETCD_BIN</c> if set, else the first known install location.</summary>
    public static string? FindEtcd()
    {
        var configured = Environment.GetEnvironmentVariable("ETCD_BIN");
        if (!string.IsNullOrEmpty(configured))
        {
            return File.Exists(configured) ? configured : null;
        }

        return Candidates.FirstOrDefault(File.Exists);
    }

    public static async Task<string> EnsureInstalledAsync(Action<string>? progress, CancellationToken cancellationToken)
    {
        if (FindEtcd() is { } existing)
        {
            return existing;
        }

        // Another process may be installing right now: wait for its lock (bounded), then look again.
        using var lockFile = await AcquireFileLockAsync(cancellationToken);
        if (FindEtcd() is { } installedMeanwhile)
        {
            return installedMeanwhile;
        }

        if (!OperatingSystem.IsLinux() || !File.Exists("/usr/bin/apt-get"))
        {
            throw new InvalidOperationException(
                "etcd is not installed and this machine has no apt-get. Install etcd 3.4+ and set ETCD_BIN to its path.");
        }

        progress?.Invoke("etcd not found: installing Debian's etcd-server and etcd-client (apt-get)…");
        string[] install = ["install", "-y", "-q", "--no-install-recommends", "etcd-server", "etcd-client"];
        if (await RunAptAsync(install, cancellationToken) != 0)
        {
            // A fresh machine has no package lists yet.
            progress?.Invoke("apt-get install failed; running apt-get update and trying once more…");
            await RunAptAsync(["update", "-q"], cancellationToken);
            if (await RunAptAsync(install, cancellationToken) != 0)
            {
                throw new InvalidOperationException("apt-get could not install etcd-server; see the output above.");
            }
        }

        return FindEtcd() ?? throw new InvalidOperationException("etcd-server installed but /usr/bin/etcd is missing.");
    }

    private static async Task<int> RunAptAsync(string[] arguments, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo("apt-get") { UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["DEBIAN_FRONTEND"] = "noninteractive";
        using var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start apt-get.");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(InstallTimeout);
        await process.WaitForExitAsync(timeout.Token);
        return process.ExitCode;
    }

    private static async Task<FileStream> AcquireFileLockAsync(CancellationToken cancellationToken)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return new FileStream(LockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (waited.Elapsed < InstallTimeout)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken);
            }
        }
    }
}

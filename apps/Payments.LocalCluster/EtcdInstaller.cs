using System.Diagnostics;

namespace Payments.LocalCluster;

/// <summary>Finds the etcd server binary, fetching it with the repository's <c>scripts/install-etcd.sh</c> when it is
/// missing: etcd 3.5 from Debian's packages, unpacked into <c>.artifacts/tools/etcd</c> (the machine's own Debian 12
/// etcd is 3.4, out of support and much dearer per request: docs/benchmarks.md).</summary>
/// <remarks>A fresh machine of this project's kind has only the .NET SDK; the run command and the tests must
/// install what they need themselves (README's two commands). The script serialises parallel callers with a lock.</remarks>
public static class EtcdInstaller
{
    public static readonly TimeSpan InstallTimeout = TimeSpan.FromMinutes(5);
    private const string ToolPath = ".artifacts/tools/etcd/etcd";
    private const string Script = "scripts/install-etcd.sh";

    /// <summary>The etcd binary: <c>ETCD_BIN</c> if set, else the one <c>scripts/install-etcd.sh</c> unpacked into the
    /// repository this program runs from (or under).</summary>
    public static string? FindEtcd()
    {
        var configured = Environment.GetEnvironmentVariable("ETCD_BIN");
        if (!string.IsNullOrEmpty(configured))
        {
            return File.Exists(configured) ? configured : null;
        }

        return FindRepositoryRoot() is { } root && File.Exists(Path.Combine(root, ToolPath)) ? Path.Combine(root, ToolPath) : null;
    }

    public static async Task<string> EnsureInstalledAsync(Action<string>? progress, CancellationToken cancellationToken)
    {
        if (FindEtcd() is { } existing)
        {
            return existing;
        }

        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("ETCD_BIN")))
        {
            throw new InvalidOperationException($"ETCD_BIN is {Environment.GetEnvironmentVariable("ETCD_BIN")}, which does not exist.");
        }

        var root = FindRepositoryRoot()
            ?? throw new InvalidOperationException($"etcd not found: run {Script} from this repository, or set ETCD_BIN to an etcd 3.5 binary.");
        progress?.Invoke($"etcd not found: running {Script} (etcd 3.5 from Debian's packages)…");
        if (await RunScriptAsync(root, cancellationToken) != 0)
        {
            throw new InvalidOperationException($"{Script} failed; see its output above.");
        }

        return FindEtcd() ?? throw new InvalidOperationException($"{Script} succeeded but {ToolPath} is missing.");
    }

    private static async Task<int> RunScriptAsync(string root, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo("bash") { UseShellExecute = false, WorkingDirectory = root };
        start.ArgumentList.Add(Path.Combine(root, Script));
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {Script}.");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(InstallTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{Script} did not finish within {InstallTimeout}.");
        }

        return process.ExitCode;
    }

    /// <summary>The checkout this program runs from: the first folder above its binaries (or the working directory)
    /// that holds <c>scripts/install-etcd.sh</c>.</summary>
    private static string? FindRepositoryRoot()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
        {
            for (var directory = new DirectoryInfo(start); directory is not null; directory = directory.Parent)
            {
                if (File.Exists(Path.Combine(directory.FullName, Script)))
                {
                    return directory.FullName;
                }
            }
        }

        return null;
    }
}

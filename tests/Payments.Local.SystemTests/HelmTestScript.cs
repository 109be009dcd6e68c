using System.Diagnostics;
using Payments.Local.Hosting;

namespace Payments.Local.SystemTests;

/// <summary>Issue 13 item 5: the chart's `helm test` script (charts/daprpayments/files/test-payment.sh, run as is in
/// the test Pod) against a running system's API — a test merchant and key, two accounts, a deposit, a payment polled
/// to completed, the key revoked — so the script a platform team runs after `helm install` is known to work.</summary>
internal static class HelmTestScript
{
    private static readonly TimeSpan ScriptTimeout = TimeSpan.FromMinutes(2);

    public static async Task AssertAPaymentCompletesAsync(LocalSystem system, CancellationToken cancellationToken)
    {
        var api = system.ApiReplicaAddresses[0];
        var start = new ProcessStartInfo("bash", [Path.Combine(MetricsScrape.RepositoryRoot(), "charts", "daprpayments", "files", "test-payment.sh")])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            Environment =
            {
                ["API_HOST"] = api.Host,
                ["API_PORT"] = api.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["ADMIN_TOKEN"] = system.ApiAdminToken,
                ["TIMEOUT_SECONDS"] = "60",
            },
        };
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var errors = process.StandardError.ReadToEndAsync(cancellationToken);
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bound.CancelAfter(ScriptTimeout);
        try
        {
            await process.WaitForExitAsync(bound.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        var transcript = await output + await errors;
        Assert.True(process.ExitCode == 0, transcript);
        Assert.Matches(@"ok: payment \S+ completed", transcript);
        Assert.Contains("cleanup: key", transcript, StringComparison.Ordinal);
        Assert.Contains("revoked (204)", transcript, StringComparison.Ordinal);
    }
}

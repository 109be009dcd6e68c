using System.Globalization;
using System.Text.Json;
using Payments.Local.Hosting;

namespace Payments.Benchmarks;

/// <summary><c>dr-drill</c>: the disaster-recovery drill as a report (the same drill the system test runs, larger):
/// prints progress, the problems found, and <c>RESULT {json}</c>.</summary>
public static class DrDrillCommand
{
    public const int MaxPayments = 10_000;
    public const int MaxWorkers = 64;
    public static readonly TimeSpan Timeout = TimeSpan.FromMinutes(15);

    public static async Task<int> RunAsync(string[] args)
    {
        var (payments, workers) = (150, 12);
        for (var index = 0; index + 1 < args.Length; index += 2)
        {
            var value = int.Parse(args[index + 1], CultureInfo.InvariantCulture);
            switch (args[index])
            {
                case "--payments" when value is > 2 and <= MaxPayments:
                    payments = value;
                    break;
                case "--workers" when value is > 0 and <= MaxWorkers:
                    workers = value;
                    break;
                default:
                    Console.Error.WriteLine($"Bad option {args[index]} {args[index + 1]} (payments 3–{MaxPayments}, workers 1–{MaxWorkers}).");
                    return 2;
            }
        }

        using var timeout = new CancellationTokenSource(Timeout);
        var result = await DrDrill.RunAsync(payments, workers, line => Console.WriteLine(line), timeout.Token);
        foreach (var problem in result.Problems)
        {
            Console.WriteLine("PROBLEM " + problem);
        }

        Console.WriteLine("RESULT " + JsonSerializer.Serialize(new
        {
            rtoSeconds = result.RtoSeconds,
            rpoPaymentsLostSync = result.RpoPaymentsLostSync,
            asyncLagP99Ms = result.AsyncLagP99Ms,
            paymentsChecked = result.PaymentsChecked,
            acknowledgedCompletedInA = result.AcknowledgedCompletedInA,
            passed = result.Passed,
        }));
        return result.Passed ? 0 : 1;
    }
}

using System.Globalization;
using System.Text.Json;
using Payments.Local.Hosting.Chaos;

namespace Payments.Benchmarks;

/// <summary><c>chaos --seconds N [--seed S] [--clients N] [--fault-every S]</c>: the fault campaign (issue 10) on the
/// local system, with progress while it runs, the problems found, and <c>RESULT {json}</c>.</summary>
public static class ChaosCommand
{
    public const int MaxSeconds = 3_600;
    public const int MaxClients = 64;

    /// <summary>The campaign's own bound: its duration, the settling of every open payment, the checks.</summary>
    public static readonly TimeSpan Overhead = TimeSpan.FromMinutes(15);

    public static async Task<int> RunAsync(string[] args)
    {
        var (seconds, seed, clients, faultEvery) = (120, 2026, 8, 6);
        for (var index = 0; index + 1 < args.Length; index += 2)
        {
            var value = int.Parse(args[index + 1], CultureInfo.InvariantCulture);
            switch (args[index])
            {
                case "--seconds" when value is > 0 and <= MaxSeconds:
                    seconds = value;
                    break;
                case "--seed":
                    seed = value;
                    break;
                case "--clients" when value is > 0 and <= MaxClients:
                    clients = value;
                    break;
                case "--fault-every" when value is > 0 and <= 600:
                    faultEvery = value;
                    break;
                default:
                    Console.Error.WriteLine($"Bad option {args[index]} {args[index + 1]} (seconds 1–{MaxSeconds}, clients 1–{MaxClients}, fault-every 1–600).");
                    return 2;
            }
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(seconds) + Overhead);
        var result = await FaultCampaign.RunAsync(
            TimeSpan.FromSeconds(seconds), clients, TimeSpan.FromSeconds(faultEvery), seed, line => Console.WriteLine(line), timeout.Token);
        foreach (var problem in result.Problems)
        {
            Console.WriteLine("PROBLEM " + problem);
        }

        var json = new Dictionary<string, object>
        {
            ["payments"] = result.Payments,
            ["faults"] = result.Faults,
            ["paymentSuccess"] = result.PaymentSuccess,
            ["answeredWithinBudget"] = result.AnsweredWithinBudget,
            ["stuck"] = result.Stuck,
            ["statusMismatches"] = result.StatusMismatches,
            ["balanceMismatches"] = result.BalanceMismatches,
            ["idempotencyViolations"] = result.IdempotencyViolations,
            ["invariantViolations"] = result.InvariantViolations,
            ["webhooksMissing"] = result.WebhooksMissing,
            ["etcdDbSizeMb"] = result.EtcdDbSizeMb,
            ["restarts"] = result.Restarts,
            ["seed"] = seed,
            ["seconds"] = seconds,
        };
        Console.WriteLine("RESULT " + JsonSerializer.Serialize(json));
        return result.Clean ? 0 : 1;
    }
}

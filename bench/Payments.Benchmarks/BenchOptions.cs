using System.Globalization;

namespace Payments.Benchmarks;

/// <summary>The options of the <c>ledger</c> and <c>saga</c> benchmarks.</summary>
/// <param name="EtcdLeader">The etcd member to make the leader before the saga's measured window (the apps pin the
/// first member they are given, 0, until it fails): compares runs where they talk to the leader with runs where they
/// talk to a follower. Null: whichever won the election.</param>
/// <param name="WarmUpSeconds">Work run before the measured window and not counted: the saga's payments (see
/// <see cref="SagaBenchmark.DefaultWarmUp"/>), or each ledger phase's own operations (see
/// <see cref="LedgerBenchmark.DefaultWarmUp"/>).</param>
public sealed record BenchOptions(int Seconds, int Workers, StatusMode Status, int? EtcdLeader, int WarmUpSeconds)
{
    public const int MaxSeconds = 3_600;
    public const int MaxWorkers = 512;
    public const int MaxWarmUpSeconds = 600;

    /// <summary>The options after the benchmark's name, or null (the problem written to stderr).</summary>
    public static BenchOptions? Parse(string[] args)
    {
        var saga = args[0] == "saga";
        var options = new BenchOptions(10, 32, StatusMode.LongPoll, null, (int)(saga ? SagaBenchmark.DefaultWarmUp : LedgerBenchmark.DefaultWarmUp).TotalSeconds);
        for (var index = 1; index + 1 < args.Length; index += 2)
        {
            if (args[index] == "--status")
            {
                if (!Enum.TryParse<StatusMode>(args[index + 1], ignoreCase: true, out var status) || int.TryParse(args[index + 1], CultureInfo.InvariantCulture, out _))
                {
                    Console.Error.WriteLine($"Bad option --status {args[index + 1]} (longpoll, poll1s, poll20ms or webhook).");
                    return null;
                }

                options = options with { Status = status };
                continue;
            }

            options = int.TryParse(args[index + 1], CultureInfo.InvariantCulture, out var value) ? args[index] switch
            {
                "--seconds" when value is > 0 and <= MaxSeconds => options with { Seconds = value },
                "--workers" when value is > 0 and <= MaxWorkers => options with { Workers = value },
                "--etcd-leader" when value is >= 0 and <= 2 && saga => options with { EtcdLeader = value },
                "--warmup" when value is >= 0 and <= MaxWarmUpSeconds => options with { WarmUpSeconds = value },
                _ => null,
            } : null;
            if (options is null)
            {
                Console.Error.WriteLine($"Bad option {args[index]} {args[index + 1]} (seconds 1–{MaxSeconds}, workers 1–{MaxWorkers}, warmup 0–{MaxWarmUpSeconds}).");
                return null;
            }
        }

        return options;
    }
}

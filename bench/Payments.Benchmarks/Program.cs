using System.Globalization;
using Payments.Benchmarks;

// dotnet run -c Release --project bench/Payments.Benchmarks -- ledger|saga --seconds N [--workers N] [--status longpoll|poll1s|poll20ms|webhook (saga)] [--etcd-leader 0-2 (saga)]
// dotnet run -c Release --project bench/Payments.Benchmarks -- dr-drill [--payments N] [--workers N]
// dotnet run -c Release --project bench/Payments.Benchmarks -- chaos --seconds N [--seed S] [--clients N] [--fault-every S]
// dotnet run -c Release --project bench/Payments.Benchmarks -- retention-soak [--payments N] [--workers N] [--no-baseline]
const int MaxSeconds = 3_600;
const int MaxWorkers = 512;
if (args.Length == 0 || args[0] is not ("ledger" or "saga" or "dr-drill" or "chaos" or "retention-soak"))
{
    Console.Error.WriteLine("Usage: Payments.Benchmarks ledger|saga [--seconds N (default 10)] [--workers N (default 32)] [--status longpoll|poll1s|poll20ms|webhook (saga; default longpoll)] [--etcd-leader 0-2 (saga: the member to lead)]");
    Console.Error.WriteLine("       Payments.Benchmarks dr-drill [--payments N (default 150)] [--workers N (default 12)]");
    Console.Error.WriteLine("       Payments.Benchmarks chaos [--seconds N (default 120)] [--seed S] [--clients N (default 8)] [--fault-every S (default 6)]");
    Console.Error.WriteLine("       Payments.Benchmarks retention-soak [--payments N (default 50000)] [--workers N (default 16)] [--no-baseline]");
    return 2;
}

if (args[0] == "retention-soak")
{
    return await RetentionSoak.RunAsync(args[1..]);
}

if (args[0] is "dr-drill" or "chaos")
{
    return args[0] == "chaos" ? await ChaosCommand.RunAsync(args[1..]) : await DrDrillCommand.RunAsync(args[1..]);
}

var seconds = 10;
var workers = 32;
var statusMode = StatusMode.LongPoll;
int? etcdLeader = null;
for (var index = 1; index + 1 < args.Length; index += 2)
{
    if (args[index] == "--status")
    {
        if (!Enum.TryParse(args[index + 1], ignoreCase: true, out statusMode) || int.TryParse(args[index + 1], CultureInfo.InvariantCulture, out _))
        {
            Console.Error.WriteLine($"Bad option --status {args[index + 1]} (longpoll, poll1s, poll20ms or webhook).");
            return 2;
        }

        continue;
    }

    var value = int.Parse(args[index + 1], CultureInfo.InvariantCulture);
    switch (args[index])
    {
        case "--seconds" when value is > 0 and <= MaxSeconds:
            seconds = value;
            break;
        case "--workers" when value is > 0 and <= MaxWorkers:
            workers = value;
            break;
        case "--etcd-leader" when value is >= 0 and <= 2 && args[0] == "saga":
            etcdLeader = value;
            break;
        default:
            Console.Error.WriteLine($"Bad option {args[index]} {args[index + 1]} (seconds 1–{MaxSeconds}, workers 1–{MaxWorkers}).");
            return 2;
    }
}

using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, eventArgs) =>
{
    eventArgs.Cancel = true;
    stop.Cancel();
};
await (args[0] == "saga"
    ? SagaBenchmark.RunAsync(TimeSpan.FromSeconds(seconds), workers, statusMode, stop.Token, etcdLeader)
    : LedgerBenchmark.RunAsync(TimeSpan.FromSeconds(seconds), workers, stop.Token));
return 0;

using Payments.Benchmarks;

// dotnet run -c Release --project bench/Payments.Benchmarks -- ledger|saga --seconds N [--workers N] [--status longpoll|poll1s|poll20ms|webhook (saga)] [--etcd-leader 0-2 (saga)] [--warmup S (saga: default 60; ledger: per phase, default 10)]
// dotnet run -c Release --project bench/Payments.Benchmarks -- dr-drill [--payments N] [--workers N]
// dotnet run -c Release --project bench/Payments.Benchmarks -- chaos --seconds N [--seed S] [--clients N] [--fault-every S]
// dotnet run -c Release --project bench/Payments.Benchmarks -- retention-soak [--payments N] [--workers N] [--no-baseline]
// dotnet run -c Release --project bench/Payments.Benchmarks -- shipping-reads
// dotnet run -c Release --project bench/Payments.Benchmarks -- key-mirror
if (args.Length == 0 || args[0] is not ("ledger" or "saga" or "dr-drill" or "chaos" or "retention-soak" or "shipping-reads" or "key-mirror"))
{
    Console.Error.WriteLine("Usage: Payments.Benchmarks ledger|saga [--seconds N (default 10)] [--workers N (default 32)] [--status longpoll|poll1s|poll20ms|webhook (saga; default longpoll)] [--etcd-leader 0-2 (saga: the member to lead)] [--warmup S (saga: default 60; ledger: per phase, default 10)]");
    Console.Error.WriteLine("       Payments.Benchmarks dr-drill [--payments N (default 150)] [--workers N (default 12)]");
    Console.Error.WriteLine("       Payments.Benchmarks chaos [--seconds N (default 120)] [--seed S] [--clients N (default 8)] [--fault-every S (default 6)]");
    Console.Error.WriteLine("       Payments.Benchmarks retention-soak [--payments N (default 50000)] [--workers N (default 16)] [--no-baseline]");
    Console.Error.WriteLine("       Payments.Benchmarks shipping-reads");
    Console.Error.WriteLine("       Payments.Benchmarks key-mirror");
    return 2;
}

if (args[0] is "shipping-reads" or "key-mirror")
{
    return args[0] == "key-mirror" ? await KeyMirrorBenchmark.RunAsync(CancellationToken.None) : await ShippingReadBenchmark.RunAsync(CancellationToken.None);
}

if (args[0] == "retention-soak")
{
    return await RetentionSoak.RunAsync(args[1..]);
}

if (args[0] is "dr-drill" or "chaos")
{
    return args[0] == "chaos" ? await ChaosCommand.RunAsync(args[1..]) : await DrDrillCommand.RunAsync(args[1..]);
}

if (BenchOptions.Parse(args) is not { } options)
{
    return 2;
}

using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, eventArgs) =>
{
    eventArgs.Cancel = true;
    stop.Cancel();
};
await (args[0] == "saga"
    ? SagaBenchmark.RunAsync(options, stop.Token)
    : LedgerBenchmark.RunAsync(TimeSpan.FromSeconds(options.Seconds), options.Workers, TimeSpan.FromSeconds(options.WarmUpSeconds), stop.Token));
return 0;

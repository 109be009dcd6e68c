using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Etcdserverpb;
using Google.Protobuf;
using HdrHistogram;
using Microsoft.Extensions.Logging.Abstractions;
using Payments.Domain;
using Payments.Etcd;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core;
using Payments.LocalCluster;

namespace Payments.Benchmarks;

/// <summary>Measures, on one fresh 3-member cluster, at one concurrency: (a) raw single-key etcd transactions,
/// (b) single ledger transfers, (c) transfers in linked batches. Each worker owns its accounts, so the figures show
/// the cost of a transfer and the gain of batching, not contention (which the tests exercise).</summary>
public static class LedgerBenchmark
{
    public const int AccountsPerWorker = 8;
    public const int TransfersPerBatch = EtcdLedger.MaxBatchTransfers;
    public const long MaxOperationsPerWorker = 10_000_000;
    private static readonly TimeSpan ProgressInterval = TimeSpan.FromSeconds(1);

    /// <summary>Each phase first runs its own operation this long, unmeasured: without it a phase's figure counted the
    /// JIT compiling its code path (its rate still rose through the 8 s window) — the raw phase's little, the ledger's
    /// much more, so the ratios understated the ledger.</summary>
    public static readonly TimeSpan DefaultWarmUp = TimeSpan.FromSeconds(10);

    /// <summary>Sequence numbers of warm-up operations start here, far above any measured one: their keys and transfer
    /// ids never meet the measured window's.</summary>
    private const long WarmUpSequenceBase = MaxOperationsPerWorker * 10;

    public static async Task RunAsync(TimeSpan phaseDuration, int workers, TimeSpan warmUp, CancellationToken cancellationToken)
    {
        await using var cluster = await LocalEtcdCluster.StartAsync(3, Console.WriteLine, cancellationToken);
        using var etcd = cluster.ConnectAsRoot();
        var ledger = new EtcdLedger(etcd, "/bench/ledger/", TimeProvider.System, NullLogger<EtcdLedger>.Instance);
        var accounts = await OpenAccountsAsync(ledger, workers, cancellationToken);
        var baseline = await RawTxnAsync(cluster, etcd, workers, phaseDuration, cancellationToken, warmUp);

        var single = await MeasureAsync(cluster, "b) ledger transfer", workers, phaseDuration, warmUp, 1, async (worker, sequence, token) =>
        {
            var outcome = await ledger.TransferAsync(Transfer(accounts[worker], worker, sequence, "s"), token);
            return outcome.IsApplied;
        }, cancellationToken);

        var batched = await MeasureAsync(cluster, $"c) linked batch of {TransfersPerBatch}", workers, phaseDuration, warmUp, TransfersPerBatch, async (worker, sequence, token) =>
        {
            var batch = Enumerable.Range(0, TransfersPerBatch)
                .Select(index => Transfer(accounts[worker], worker, (sequence * TransfersPerBatch) + index, "b"))
                .ToArray();
            var outcome = await ledger.ApplyBatchAsync(batch, token);
            return outcome.Succeeded;
        }, cancellationToken);

        Print(workers, baseline, single, batched);
    }

    /// <summary>Raw single-key etcd transactions (a create-if-absent of a 200-byte value, about a transfer record) from
    /// <paramref name="workers"/> workers: the baseline every other figure is a ratio of, measured in the same run.
    /// Its keys are deleted afterwards.</summary>
    internal static async Task<PhaseResult> RawTxnAsync(
        LocalEtcdCluster cluster, EtcdConnection etcd, int workers, TimeSpan duration, CancellationToken cancellationToken, TimeSpan warmUp = default)
    {
        var value = ByteString.CopyFrom(new byte[200]);
        var result = await MeasureAsync(cluster, "a) raw single-key txn", workers, duration, warmUp, 1, async (worker, sequence, token) =>
        {
            var key = $"/bench/raw/{worker}/{sequence}";
            var request = new TxnRequest();
            request.Compare.Add(EtcdBytes.CreateRevisionIs(key, 0));
            request.Success.Add(EtcdBytes.Put(key, value));
            var response = await EtcdConnection.CallAsync(callToken => etcd.Kv.TxnAsync(request, cancellationToken: callToken), token);
            return response.Succeeded;
        }, cancellationToken);
        await EtcdConnection.CallAsync(token => etcd.Kv.DeleteRangeAsync(
            new DeleteRangeRequest { Key = EtcdBytes.Key("/bench/raw/"), RangeEnd = EtcdBytes.PrefixEnd("/bench/raw/") }, cancellationToken: token), cancellationToken);
        return result;
    }

    private static TransferRequest Transfer(AccountId[] accounts, int worker, long sequence, string phase)
    {
        var debit = accounts[(int)(sequence % AccountsPerWorker)];
        var credit = accounts[(int)((sequence + 1 + (sequence / AccountsPerWorker % (AccountsPerWorker - 1))) % AccountsPerWorker)];
        return new TransferRequest.Single(TransferId.Parse($"{phase}-{worker}-{sequence}"), debit, credit, new Money(1, Currency.Usd));
    }

    private static async Task<AccountId[][]> OpenAccountsAsync(EtcdLedger ledger, int workers, CancellationToken cancellationToken)
    {
        Console.WriteLine($"Opening {workers * AccountsPerWorker} accounts…");
        var accounts = Enumerable.Range(0, workers)
            .Select(worker => Enumerable.Range(0, AccountsPerWorker).Select(index => AccountId.Parse($"bench-{worker}-{index}")).ToArray())
            .ToArray();
        await Parallel.ForEachAsync(accounts.SelectMany(set => set), cancellationToken, async (id, token) =>
        {
            await ledger.OpenAccountAsync(id, Currency.Usd, overdraftLimitMinor: long.MaxValue / 4, token);
        });
        return accounts;
    }

    private static async Task<PhaseResult> MeasureAsync(
        LocalEtcdCluster cluster, string name, int workers, TimeSpan duration, TimeSpan warmUp, int transfersPerOperation,
        Func<int, long, CancellationToken, Task<bool>> operation, CancellationToken cancellationToken)
    {
        if (warmUp > TimeSpan.Zero)
        {
            await MeasureAsync(cluster, name + " (warm-up)", workers, warmUp, TimeSpan.Zero, transfersPerOperation,
                (worker, sequence, token) => operation(worker, WarmUpSequenceBase + sequence, token), cancellationToken);
        }

        var histograms = Enumerable.Range(0, workers).Select(_ => new LongHistogram(TimeStamp.Minutes(1), 3)).ToArray();
        var completed = new long[workers];
        var failed = 0L;
        using var counters = new LedgerCounters();
        var requestsBefore = await RequestsAsync(cluster, cancellationToken);
        var etcdCpuBefore = SystemCpu.DescendantSecondsByProgram().Values.Sum();
        var ownCpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        var tasks = Enumerable.Range(0, workers).Select(worker => Task.Run(async () =>
        {
            for (long sequence = 0; sequence < MaxOperationsPerWorker && clock.Elapsed < duration; sequence++)
            {
                var start = Stopwatch.GetTimestamp();
                if (!await operation(worker, sequence, cancellationToken))
                {
                    Interlocked.Increment(ref failed);
                }

                histograms[worker].RecordValue(Stopwatch.GetTimestamp() - start);
                Interlocked.Increment(ref completed[worker]);
            }
        }, cancellationToken)).ToArray();

        var all = Task.WhenAll(tasks);
        while (!all.IsCompleted)
        {
            await Task.WhenAny(all, Task.Delay(ProgressInterval, cancellationToken));
            var done = completed.Sum();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {name}: {clock.Elapsed.TotalSeconds,5:F1} s  {done,9:N0} ops  {done / clock.Elapsed.TotalSeconds,9:N0} ops/s"));
        }

        await all;
        var elapsed = clock.Elapsed;
        var etcdCpu = SystemCpu.DescendantSecondsByProgram().Values.Sum() - etcdCpuBefore;
        var ownCpu = (Process.GetCurrentProcess().TotalProcessorTime - ownCpuBefore).TotalSeconds;
        var requests = await RequestsAsync(cluster, cancellationToken);
        var merged = new LongHistogram(TimeStamp.Minutes(1), 3);
        foreach (var histogram in histograms)
        {
            merged.Add(histogram);
        }

        if (failed > 0)
        {
            throw new InvalidOperationException($"{name}: {failed} operations failed; the figures would mean nothing.");
        }

        var operations = completed.Sum();
        var items = operations * transfersPerOperation;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  {name}: CPU per item {etcdCpu * 1e6 / items:F0} µs in the processes this run started (etcd…) + {ownCpu * 1e6 / items:F0} µs in this process; "
            + $"{(requests.Txn - requestsBefore.Txn) / items:F2} Txn and {(requests.Range - requestsBefore.Range) / items:F2} Range requests; "
            + $"{counters.Groups:N0} groups of {counters.MeanGroupSize:F1} on average; {counters.Conflicts:N0} conflicts"));
        return new PhaseResult(
            name, operations, items / elapsed.TotalSeconds,
            ToMilliseconds(merged.GetValueAtPercentile(50)), ToMilliseconds(merged.GetValueAtPercentile(99)));
    }

    /// <summary>Txn and Range requests the members received so far (summed over the members).</summary>
    private static async Task<(double Txn, double Range)> RequestsAsync(LocalEtcdCluster cluster, CancellationToken cancellationToken)
    {
        var pages = await cluster.MetricsAsync(cancellationToken);
        return (LocalEtcdCluster.SumMetric(pages, "grpc_server_msg_received_total", ["grpc_method=\"Txn\""]),
            LocalEtcdCluster.SumMetric(pages, "grpc_server_msg_received_total", ["grpc_method=\"Range\""]));
    }

    private static double ToMilliseconds(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;

    private static void Print(int workers, PhaseResult baseline, PhaseResult single, PhaseResult batched)
    {
        Console.WriteLine();
        Console.WriteLine($"{"phase",-26} {"ops",10} {"items/s",10} {"p50 ms",8} {"p99 ms",8}   (concurrency {workers})");
        foreach (var phase in new[] { baseline, single, batched })
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{phase.Name,-26} {phase.Operations,10:N0} {phase.ItemsPerSecond,10:N0} {phase.P50Ms,8:F2} {phase.P99Ms,8:F2}"));
        }

        var transferRatio = single.ItemsPerSecond / baseline.ItemsPerSecond;
        var batchRatio = batched.ItemsPerSecond / baseline.ItemsPerSecond;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"b/a = {transferRatio:F2} (target ≥ 0.5)   c/a = {batchRatio:F2} (target ≥ 3)   items: a=txns, b=transfers, c=transfers"));
        var result = new Dictionary<string, object>
        {
            ["baselineOpsPerSec"] = Math.Round(baseline.ItemsPerSecond, 1),
            ["transferOpsPerSec"] = Math.Round(single.ItemsPerSecond, 1),
            ["batchedTransferOpsPerSec"] = Math.Round(batched.ItemsPerSecond, 1),
            ["transferP99Ms"] = Math.Round(single.P99Ms, 2),
            ["transferP50Ms"] = Math.Round(single.P50Ms, 2),
            ["baselineP99Ms"] = Math.Round(baseline.P99Ms, 2),
            ["transferRatio"] = Math.Round(transferRatio, 2),
            ["batchedRatio"] = Math.Round(batchRatio, 2),
            ["workers"] = workers,
        };
        Console.WriteLine("RESULT " + JsonSerializer.Serialize(result));
    }

    internal sealed record PhaseResult(string Name, long Operations, double ItemsPerSecond, double P50Ms, double P99Ms);
}

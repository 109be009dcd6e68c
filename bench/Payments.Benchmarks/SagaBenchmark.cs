using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using HdrHistogram;
using Payments.Local.Hosting;
using Payments.LocalCluster;
using Payments.Merchants;

namespace Payments.Benchmarks;

/// <summary>How the benchmark's clients follow a payment to its end.</summary>
public enum StatusMode
{
    /// <summary><c>GET ?wait=</c> from the status seen last: one request per change.</summary>
    LongPoll,

    /// <summary>A plain GET every second, as a client without the wait would do it politely.</summary>
    Poll1s,

    /// <summary>A plain GET every 20 ms: what this benchmark did before the wait existed (the issue 14 baseline).</summary>
    Poll20ms,

    /// <summary>No status request at all: each merchant registers a webhook endpoint, and a client learns of the end of
    /// its payment from the signed <c>payment.completed</c> (or failed, compensated) delivery.</summary>
    Webhook,
}

/// <summary>Drives the public API of the local system at a fixed concurrency: each client submits a payment and
/// follows it to a terminal state, then submits the next. Reports, in one run: raw etcd transactions/s (a short
/// baseline first, on the same cluster), payments/s, submit-to-terminal latency, the CPU every process of the system
/// spent per payment (from /proc), the etcd write transactions per payment (Raft entries), and payments per raw txn.</summary>
public static class SagaBenchmark
{
    public const int AccountsPerClient = 4;
    public const long FundsMinor = 1_000_000_000;
    public const long MaxPaymentsPerClient = 1_000_000;
    private static readonly TimeSpan TerminalTimeout = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan BaselineDuration = TimeSpan.FromSeconds(5);

    /// <summary>The baseline's own code path runs this long first, unmeasured (the saga's warm-up does not cover it).</summary>
    private static readonly TimeSpan BaselineWarmUp = TimeSpan.FromSeconds(3);

    /// <summary>Payments run before the measured window and not counted, by default: a fresh system spends its first
    /// minute compiling. Seven processes JIT ~10,000 methods each, up to three times (tier 0, instrumented, tier 1),
    /// on two cores already busy with payments. Profiled with <c>perf</c> 20 s after a 10 s warm-up, the JIT took 37 %
    /// of all CPU, and the figure counted it as the payments' cost (the API's 14.6 CPU-ms per payment was 5.3 after
    /// 120 s). docs/benchmarks.md has the runs.</summary>
    public static readonly TimeSpan DefaultWarmUp = TimeSpan.FromSeconds(60);

    /// <summary>The risk service's velocity limits for this run (inherited by the apps it starts): each debtor here pays
    /// a payment every few hundred milliseconds, like a settlement account, and the benchmark measures the approved
    /// path. With the default (50 per 10 min) a run stalled after ~200 payments per client, all of them awaiting a
    /// reviewer no one is.</summary>
    private static readonly Dictionary<string, string> RiskLimits = new()
    {
        ["Payments__VelocityMaxCount"] = "100000000",
        ["Payments__VelocityMaxSumMinor"] = "1000000000000",
    };

    public static async Task RunAsync(BenchOptions options, CancellationToken cancellationToken)
    {
        var (duration, clients, mode, etcdLeader) = (TimeSpan.FromSeconds(options.Seconds), options.Workers, options.Status, options.EtcdLeader);
        foreach (var (name, value) in RiskLimits)
        {
            Environment.SetEnvironmentVariable(name, Environment.GetEnvironmentVariable(name) ?? value); // a value set by hand wins
        }
        await using var system = await LocalSystem.StartAsync(0, Console.WriteLine, cancellationToken);
        var store = new MerchantStore(system.Etcd, LocalSystem.KeyPrefix + "api/");
        Console.WriteLine($"Opening {clients * AccountsPerClient} accounts for {clients} merchants (one API key per client)…");
        var http = await Task.WhenAll(Enumerable.Range(0, clients).Select(client => ClientAsync(system, store, client, cancellationToken)));
        await using var sink = mode == StatusMode.Webhook ? await WebhookSink.StartAsync() : null;
        if (sink is not null)
        {
            Console.WriteLine("Registering a webhook endpoint per merchant…");
            await Task.WhenAll(http.Select((client, index) => sink.RegisterAsync(client, $"bench-{index}", cancellationToken)));
        }

        await DriveAsync(http, TimeSpan.FromSeconds(options.WarmUpSeconds), mode, sink, "warm-up", cancellationToken);
        await MakeLeaderAsync(system, etcdLeader, cancellationToken);
        Console.WriteLine($"Baseline: raw etcd transactions for {BaselineDuration.TotalSeconds:F0} s at {clients} workers…");
        var raw = await LedgerBenchmark.RawTxnAsync(system.Cluster, system.Etcd, clients, BaselineDuration, cancellationToken, BaselineWarmUp);

        var requestsBefore = await EtcdRequestsAsync(system, cancellationToken); // before the CPU count: serving /metrics costs etcd CPU
        var byMemberBefore = await RequestsByMemberAsync(system, cancellationToken);
        var cpuBefore = SystemCpu.DescendantSecondsByProgram();
        var raftBefore = await RaftIndexAsync(system, cancellationToken);
        var (payments, notCompleted, elapsed, merged) = await DriveAsync(http, duration, mode, sink, "saga", cancellationToken);
        var cpuByProgram = SystemCpu.DescendantSecondsByProgram()
            .Select(entry => (Program: entry.Key, Seconds: entry.Value - cpuBefore.GetValueOrDefault(entry.Key)))
            .OrderByDescending(entry => entry.Seconds).ToArray();
        var cpuSeconds = cpuByProgram.Sum(entry => entry.Seconds);
        var raftEntries = await RaftIndexAsync(system, cancellationToken) - raftBefore;
        var requests = (await EtcdRequestsAsync(system, cancellationToken)) // after the CPU count, for the same reason
            .Select(entry => (Method: entry.Key, Count: entry.Value - requestsBefore.GetValueOrDefault(entry.Key)))
            .Where(entry => entry.Count > 0).OrderByDescending(entry => entry.Count).ToArray();
        var byMember = await RequestsByMemberAsync(system, cancellationToken);
        var leaderShare = LeaderShare(byMemberBefore, byMember);

        var perSecond = payments / elapsed.TotalSeconds;
        var p50 = merged.GetValueAtPercentile(50) * 1000.0 / Stopwatch.Frequency;
        var p99 = merged.GetValueAtPercentile(99) * 1000.0 / Stopwatch.Frequency;
        var cpuMs = payments == 0 ? 0 : cpuSeconds * 1000 / payments;
        var txnsPerPayment = payments == 0 ? 0 : (double)raftEntries / payments;
        Console.WriteLine();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{payments:N0} payments in {elapsed.TotalSeconds:F1} s at concurrency {clients}, status by {mode}: {perSecond:F1} payments/s, submit-to-terminal p50 {p50:F1} ms, p99 {p99:F1} ms, not completed {notCompleted}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"raw etcd {raw.ItemsPerSecond:F0} txn/s; {cpuSeconds:F1} CPU-s by the system's processes = {cpuMs:F1} ms per payment; {txnsPerPayment:F1} etcd write txns per payment; {perSecond / raw.ItemsPerSecond:F4} payments per raw txn"));
        PrintBreakdown(payments, cpuByProgram, cpuSeconds, requests, leaderShare);
        var result = new Dictionary<string, object>
        {
            ["status"] = mode.ToString().ToLowerInvariant(),
            ["rawTxnPerSec"] = Math.Round(raw.ItemsPerSecond, 0),
            ["paymentsPerSec"] = Math.Round(perSecond, 1),
            ["terminalP50Ms"] = Math.Round(p50, 1),
            ["terminalP99Ms"] = Math.Round(p99, 1),
            ["cpuMsPerPayment"] = Math.Round(cpuMs, 1),
            ["etcdTxnsPerPayment"] = Math.Round(txnsPerPayment, 2),
            ["paymentsPerRawTxn"] = Math.Round(perSecond / raw.ItemsPerSecond, 4),
            ["payments"] = payments,
            ["notCompleted"] = notCompleted,
            ["clients"] = clients,
            ["warmUpSeconds"] = options.WarmUpSeconds,
            ["webhooksRefused"] = sink?.Refused ?? 0,
            ["leaderRequestShare"] = Math.Round(leaderShare, 2),
        };
        Console.WriteLine("RESULT " + JsonSerializer.Serialize(result));
        Array.ForEach(http, client => client.Dispose());
    }

    /// <summary>Where a payment's cost went: CPU by program, etcd requests by method, and the leader's share of them.</summary>
    private static void PrintBreakdown(
        long payments, (string Program, double Seconds)[] cpuByProgram, double cpuSeconds, (string Method, double Count)[] requests, double leaderShare)
    {
        Console.WriteLine("CPU by program: " + string.Join(", ", cpuByProgram.Select(entry => string.Create(CultureInfo.InvariantCulture,
            $"{entry.Program} {(payments == 0 ? 0 : entry.Seconds * 1000 / payments):F1} ms ({entry.Seconds / Math.Max(cpuSeconds, 1e-9):P0})"))));
        Console.WriteLine("etcd requests per payment (counted by etcd): " + string.Join(", ", requests.Select(entry => string.Create(CultureInfo.InvariantCulture,
            $"{entry.Method} {(payments == 0 ? 0 : entry.Count / payments):F2}"))));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Txn and Range requests received by the leader: {leaderShare:P0} (the apps pin one member each; a follower forwards writes and asks the leader for each linearizable read)"));
    }

    /// <summary>The clients' loop, with progress every second: payments terminal, those not completed, the time
    /// taken, and every payment's submit-to-terminal latency.</summary>
    private static async Task<(long Payments, long NotCompleted, TimeSpan Elapsed, LongHistogram Latency)> DriveAsync(
        HttpClient[] http, TimeSpan duration, StatusMode mode, WebhookSink? sink, string phase, CancellationToken cancellationToken)
    {
        var clients = http.Length;
        Console.WriteLine($"{phase}: {clients} clients for {duration.TotalSeconds:F0} s…");
        var histograms = Enumerable.Range(0, clients).Select(_ => new LongHistogram(TimeStamp.Minutes(5), 3)).ToArray();
        var completed = new long[clients];
        var notCompleted = 0L;
        var clock = Stopwatch.StartNew();
        var workers = Task.WhenAll(Enumerable.Range(0, clients).Select(client => Task.Run(async () =>
        {
            for (long sequence = 0; sequence < MaxPaymentsPerClient && clock.Elapsed < duration; sequence++)
            {
                var start = Stopwatch.GetTimestamp();
                if (await PayAsync(http[client], $"{phase}-{client}-{sequence}", client, sequence, mode, sink, cancellationToken) != "completed")
                {
                    Interlocked.Increment(ref notCompleted);
                }

                histograms[client].RecordValue(Stopwatch.GetTimestamp() - start);
                Interlocked.Increment(ref completed[client]);
            }
        }, cancellationToken)));
        while (!workers.IsCompleted)
        {
            await Task.WhenAny(workers, Task.Delay(TimeSpan.FromSeconds(1), cancellationToken));
            var done = completed.Sum();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {phase}: {clock.Elapsed.TotalSeconds,5:F1} s  {done,7:N0} payments terminal  {done / clock.Elapsed.TotalSeconds,7:N1} /s"));
        }

        await workers;
        var elapsed = clock.Elapsed;
        var merged = new LongHistogram(TimeStamp.Minutes(5), 3);
        foreach (var histogram in histograms)
        {
            merged.Add(histogram);
        }

        return (completed.Sum(), notCompleted, elapsed, merged);
    }

    /// <summary>The cluster's Raft index (the highest of the members'): one entry per write transaction committed
    /// (and per lease grant, revoke or compaction); reads are served without one.</summary>
    private static async Task<long> RaftIndexAsync(LocalSystem system, CancellationToken cancellationToken)
    {
        var highest = 0L;
        for (var member = 0; member < system.Cluster.Members.Count; member++)
        {
            var status = await system.Etcd.MemberMaintenance(member).StatusAsync(
                new Etcdserverpb.StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: cancellationToken);
            highest = Math.Max(highest, (long)status.RaftIndex);
        }

        return highest;
    }

    /// <summary>The requests the members received, by gRPC method (<c>grpc_server_msg_received_total</c>: a stream counts each message; summed over
    /// the members; a client's request is answered by one member): what a payment asks of etcd, reads included.</summary>
    private static async Task<Dictionary<string, double>> EtcdRequestsAsync(LocalSystem system, CancellationToken cancellationToken)
    {
        var pages = await system.Cluster.MetricsAsync(cancellationToken);
        var received = EtcdMethods.ToDictionary(method => method,
            method => LocalEtcdCluster.SumMetric(pages, "grpc_server_msg_received_total", [$"grpc_method=\"{method}\""]));
        // A watch's cost is in what it sends: one message per watched revision and stream (events of one revision share it).
        received["Watch responses sent"] = LocalEtcdCluster.SumMetric(pages, "grpc_server_msg_sent_total", ["grpc_method=\"Watch\""]);
        received["watch events"] = LocalEtcdCluster.SumMetric(pages, "etcd_debugging_mvcc_events_total", []);
        return received;
    }

    /// <summary>Moves etcd's leadership to <paramref name="member"/> (MoveLeader, sent to the current leader), at most
    /// <see cref="MaxLeaderMoves"/> tries.</summary>
    private static async Task MakeLeaderAsync(LocalSystem system, int? wanted, CancellationToken cancellationToken)
    {
        if (wanted is not { } member)
        {
            return; // whichever won the election
        }

        for (var attempt = 1; attempt <= MaxLeaderMoves; attempt++)
        {
            var leader = await system.Cluster.LeaderIndexAsync(cancellationToken);
            if (leader == member)
            {
                Console.WriteLine($"etcd member {member} leads.");
                return;
            }

            var target = await system.Etcd.MemberMaintenance(member).StatusAsync(
                new Etcdserverpb.StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: cancellationToken);
            await system.Etcd.MemberMaintenance(leader).MoveLeaderAsync(
                new Etcdserverpb.MoveLeaderRequest { TargetID = target.Header.MemberId }, deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: cancellationToken);
        }

        throw new InvalidOperationException($"etcd member {member} did not become the leader in {MaxLeaderMoves} moves.");
    }

    private const int MaxLeaderMoves = 5;

    /// <summary>Txn and Range requests each member received so far, and which member leads (-1: none known).</summary>
    private static async Task<(double[] PerMember, int Leader)> RequestsByMemberAsync(LocalSystem system, CancellationToken cancellationToken)
    {
        var pages = await system.Cluster.MetricsAsync(cancellationToken);
        var perMember = pages.Select(page => LocalEtcdCluster.SumMetric([page], "grpc_server_msg_received_total", ["grpc_method=\"Txn\""])
                                             + LocalEtcdCluster.SumMetric([page], "grpc_server_msg_received_total", ["grpc_method=\"Range\""])).ToArray();
        return (perMember, pages.ToList().FindIndex(page => page.Contains("\netcd_server_is_leader 1", StringComparison.Ordinal)));
    }

    /// <summary>The share of the requests between two counts that the leader (at the end) received; NaN when the
    /// members or the leader cannot be matched.</summary>
    private static double LeaderShare((double[] PerMember, int Leader) before, (double[] PerMember, int Leader) after)
    {
        if (after.Leader < 0 || before.PerMember.Length != after.PerMember.Length)
        {
            return double.NaN;
        }

        var deltas = after.PerMember.Select((count, member) => count - before.PerMember[member]).ToArray();
        return deltas.Sum() <= 0 ? double.NaN : deltas[after.Leader] / deltas.Sum();
    }

    private static readonly string[] EtcdMethods = ["Range", "Txn", "Put", "DeleteRange", "LeaseGrant", "LeaseRevoke", "LeaseKeepAlive", "Watch"];

    private static async Task<HttpClient> ClientAsync(LocalSystem system, MerchantStore store, int client, CancellationToken cancellationToken)
    {
        var http = new HttpClient { BaseAddress = system.ApiBaseAddress, Timeout = TimeSpan.FromSeconds(60) }; // above the 20 s status wait
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await store.IssueApiKeyAsync($"bench-{client}", cancellationToken));
        for (var index = 0; index < AccountsPerClient; index++)
        {
            var id = $"bench-{client}-{index}";
            (await http.PostAsJsonAsync("/v1/accounts", new { accountId = id, currency = "USD" }, cancellationToken)).EnsureSuccessStatusCode();
            using var deposit = new HttpRequestMessage(HttpMethod.Post, $"/v1/accounts/{id}/deposits") { Content = JsonContent.Create(new { amountMinor = FundsMinor, currency = "USD" }) };
            deposit.Headers.Add("Idempotency-Key", "fund-" + id);
            (await http.SendAsync(deposit, cancellationToken)).EnsureSuccessStatusCode();
        }

        return http;
    }

    private static async Task<string> PayAsync(
        HttpClient http, string idempotencyKey, int client, long sequence, StatusMode mode, WebhookSink? sink, CancellationToken cancellationToken)
    {
        var debtor = $"bench-{client}-{sequence % AccountsPerClient}";
        var creditor = $"bench-{client}-{(sequence + 1) % AccountsPerClient}";
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/payments")
        {
            Content = JsonContent.Create(new { debtorAccountId = debtor, creditorAccountId = creditor, amountMinor = 100, currency = "USD" }),
        };
        request.Headers.Add("Idempotency-Key", "bench-" + idempotencyKey);
        var accepted = await http.SendAsync(request, cancellationToken);
        if (accepted.StatusCode != HttpStatusCode.Accepted)
        {
            return $"http-{(int)accepted.StatusCode}";
        }

        var answer = await accepted.Content.ReadFromJsonAsync<JsonElement>(cancellationToken);
        var paymentId = answer.GetProperty("paymentId").GetString()!;
        var known = answer.GetProperty("status").GetString(); // a client waits from the status the 202 gave it
        if (sink is not null)
        {
            try
            {
                return await sink.FinalStatusAsync(paymentId).WaitAsync(TerminalTimeout, cancellationToken);
            }
            catch (TimeoutException)
            {
                return "no-webhook";
            }
            finally
            {
                sink.Forget(paymentId);
            }
        }

        var (status, _) = mode switch
        {
            StatusMode.LongPoll => await PaymentPolling.FollowAsync(http, paymentId, TerminalTimeout, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(20), null, cancellationToken, known),
            StatusMode.Poll1s => await PaymentPolling.FollowAsync(http, paymentId, TerminalTimeout, TimeSpan.FromSeconds(1), TimeSpan.Zero, null, cancellationToken),
            _ => await PaymentPolling.FollowAsync(http, paymentId, TerminalTimeout, TimeSpan.FromMilliseconds(20), TimeSpan.Zero, null, cancellationToken),
        };
        return status;
    }
}

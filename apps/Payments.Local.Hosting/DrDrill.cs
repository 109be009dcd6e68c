using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Grpc.Core;
using Payments.Domain;
using Payments.Etcd.Regions;
using Payments.Failover.Core;
using Payments.Failover.Core.Replication;
using Payments.Ledger.Core;
using Payments.LocalCluster;
using Payments.Merchants;
using Payments.ServiceDefaults.Security;

namespace Payments.Local.Hosting;

/// <summary>The disaster-recovery drill on this machine (ADR 0003): two regions — each its own 3-member etcd cluster
/// and every app as a process — sharing the local Cosmos-compatible server. Clients pay through region A; once a third
/// of the batch is accepted, region A is killed entirely; clients retry their payments with the same Idempotency-Keys
/// against region B, which promotes itself. Measured: RTO (loss → B's first accepted payment), RPO in sync mode
/// (payments A acknowledged as completed whose settlement B does not hold when it takes over), and, in a second pair
/// of regions in async mode, the shipping lag. Checked: every payment terminal in B, each amount moved once, the
/// ledger's invariants in B.</summary>
public static class DrDrill
{
    public const long FundsMinor = 10_000_000;
    public const int Accounts = 8;
    /// <summary>Per payment, from its first submission (in A) through the loss and the failover to its end in B: past the
    /// sweeper's StallBound (3 min), so a saga whose work item was lost with a disconnected worker is run again in time.</summary>
    public static readonly TimeSpan PaymentDeadline = TimeSpan.FromMinutes(6);
    internal static readonly TimeSpan RetryDelay = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan LagSampleInterval = TimeSpan.FromMilliseconds(50);

    public sealed record Result(
        double RtoSeconds, int RpoPaymentsLostSync, double AsyncLagP99Ms, int PaymentsChecked, int AcknowledgedCompletedInA, IReadOnlyList<string> Problems)
    {
        public bool Passed => Problems.Count == 0 && RpoPaymentsLostSync == 0;
    }

    public static async Task<Result> RunAsync(int payments, int clients, Action<string> progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(progress);
        var problems = new List<string>();
        // Each phase its own global database: the second pair must not find the first pair's record and journal.
        TimeSpan rto;
        int rpo, checkedCount, acknowledged;
        await using (var cosmos = await LocalCosmosServer.StartAsync(cancellationToken))
        {
            (rto, rpo, checkedCount, acknowledged) = await new SyncFailoverDrill(cosmos, payments, clients, progress, problems).RunAsync(cancellationToken);
        }

        double lagP99;
        await using (var cosmos = await LocalCosmosServer.StartAsync(cancellationToken))
        {
            lagP99 = await AsyncLagAsync(cosmos, payments, clients, progress, cancellationToken);
        }

        return new Result(Math.Round(rto.TotalSeconds, 1), rpo, lagP99, checkedCount, acknowledged, problems);
    }

    /// <summary>Region A comes back (its etcd and its failover service): it must see region B's higher epoch and stay
    /// passive — no epoch mirrored in its etcd, so its ledger refuses every write — and its journal must hold no entry
    /// of its own from after B's promotion (entries it copies from B carry B's transfer ids).</summary>
    internal static async Task CheckReturnedRegionStaysPassiveAsync(
        LocalSystem a, LocalSystem b, Action<string> progress, List<string> problems, CancellationToken cancellationToken)
    {
        await a.RestartEtcdAndFailoverAsync(line => progress("[a] " + line), cancellationToken);
        using var failover = a.FailoverClient(TimeSpan.FromSeconds(5));
        JsonElement status = default;
        await WaitAsync(async () =>
        {
            status = await failover.GetFromJsonAsync<JsonElement>("/admin/v1/region", cancellationToken);
            return status.GetProperty("activeRegion").ValueKind == JsonValueKind.String;
        }, cancellationToken);
        if (status.GetProperty("role").GetString() != "standby" || status.GetProperty("activeRegion").GetString() != b.Region!.Name)
        {
            problems.Add($"returned region A: {status}");
        }

        // Its first tick removes an epoch its etcd still mirrors (etcd restarted that lease's TTL when it restarted).
        var mirror = new RegionEpochMirror(a.Etcd, LocalSystem.KeyPrefix);
        try
        {
            await WaitAsync(async () => await mirror.ReadAsync(cancellationToken) is null, cancellationToken);
        }
        catch (TimeoutException)
        {
            problems.Add($"returned region A still mirrors epoch {await mirror.ReadAsync(cancellationToken)}: it could write");
        }

        var promotedEpoch = status.GetProperty("activeEpoch").GetInt64();
        var inB = (await new JournalReader(b.Ledger).ReadAllAsync(2_000_000, cancellationToken)).Select(entry => entry.TransferId.Value).ToHashSet();
        var own = (await new JournalReader(a.Ledger).ReadAllAsync(2_000_000, cancellationToken)).Count(entry => !inB.Contains(entry.TransferId.Value));
        progress($"Region A back: standby under {b.Region!.Name}'s epoch {promotedEpoch}; {own} journal entries of its own that B does not hold (unacknowledged writes A made before it was lost).");
    }

    /// <summary>Async mode, no failure: the shipping lag (age of the oldest unshipped entry) sampled under load.</summary>
    private static async Task<double> AsyncLagAsync(LocalCosmosServer cosmos, int payments, int clients, Action<string> progress, CancellationToken cancellationToken)
    {
        await using var a = await LocalSystem.StartAsync(0, line => progress("[async a] " + line), cancellationToken,
            new LocalSystem.RegionSettings("async-a", "async-b", RegionRole.Active, cosmos.Endpoint, LocalCosmosServer.Key, ReplicationMode.Async));
        var key = await PrepareAsync(a, standby: null, progress, cancellationToken);
        using var http = Client(a.ApiBaseAddress, key);
        using var ledger = new HttpClient { BaseAddress = new Uri(a.LedgerUrl), Timeout = TimeSpan.FromSeconds(5) };
        a.Identity.Present(ledger, ServiceRoles.Failover, ServiceRoles.Ledger);
        var samples = new ConcurrentBag<long>();
        using var stopSampling = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var sampler = Task.Run(async () =>
        {
            while (!stopSampling.IsCancellationRequested)
            {
                var progressNow = await ledger.GetFromJsonAsync<JsonElement>("ledger/v1/replication", stopSampling.Token);
                samples.Add(progressNow.GetProperty("lagMilliseconds").GetInt64());
                await Task.Delay(LagSampleInterval, stopSampling.Token);
            }
        }, stopSampling.Token);
        await Parallel.ForEachAsync(Enumerable.Range(0, payments), new ParallelOptions { MaxDegreeOfParallelism = clients, CancellationToken = cancellationToken },
            async (index, token) =>
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/payments")
                {
                    Content = JsonContent.Create(new { debtorAccountId = $"drill-{index % Accounts}", creditorAccountId = $"drill-{(index + 1) % Accounts}", amountMinor = 100, currency = "EUR" }),
                };
                request.Headers.Add("Idempotency-Key", $"async-{index}");
                using var response = await http.SendAsync(request, token);
                if (response.StatusCode == HttpStatusCode.Accepted)
                {
                    await PollAsync(http, (await response.Content.ReadFromJsonAsync<JsonElement>(token)).GetProperty("paymentId").GetString()!, token);
                }
            });
        await stopSampling.CancelAsync();
        try
        {
            await sampler;
        }
        catch (OperationCanceledException)
        {
            // sampling stopped
        }

        var sorted = samples.Order().ToArray();
        return sorted.Length == 0 ? 0 : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(0.99 * sorted.Length) - 1)];
    }

    /// <summary>A merchant key and funded accounts in the active region; with a standby, waits (bounded) until the
    /// standby knows them too (the records travel with the replicated journal).</summary>
    internal static async Task<string> PrepareAsync(LocalSystem active, LocalSystem? standby, Action<string> progress, CancellationToken cancellationToken)
    {
        using var failover = active.FailoverClient(TimeSpan.FromSeconds(5));
        await WaitAsync(async () => (await failover.GetFromJsonAsync<JsonElement>("/admin/v1/region", cancellationToken)).GetProperty("writable").GetBoolean(), cancellationToken);
        var merchants = new MerchantStore(active.Etcd, LocalSystem.Layout.ApiPrefix);
        var key = await EtcdAsync(() => merchants.IssueApiKeyAsync("drill-merchant", cancellationToken), cancellationToken);
        using var http = Client(active.ApiBaseAddress, key);
        for (var index = 0; index < Accounts; index++)
        {
            var account = $"drill-{index}";
            // The API replicas learn that their region is writable within a poll (500 ms): retry 503 until then.
            await WaitAsync(async () => (await http.PostAsJsonAsync("/v1/accounts", new { accountId = account, currency = "EUR" }, cancellationToken)).StatusCode
                is HttpStatusCode.Created or HttpStatusCode.Conflict, cancellationToken);
            await WaitAsync(async () =>
            {
                using var deposit = new HttpRequestMessage(HttpMethod.Post, $"/v1/accounts/{account}/deposits") { Content = JsonContent.Create(new { amountMinor = FundsMinor, currency = "EUR" }) };
                deposit.Headers.Add("Idempotency-Key", $"drill-deposit-{index}");
                return (await http.SendAsync(deposit, cancellationToken)).StatusCode == HttpStatusCode.Created;
            }, cancellationToken);
        }

        if (standby is not null)
        {
            var owners = new MerchantStore(standby.Etcd, LocalSystem.Layout.ApiPrefix);
            await WaitAsync(async () => await EtcdAsync(() => owners.AccountOwnerAsync($"drill-{Accounts - 1}", cancellationToken), cancellationToken) is not null
                                        && await EtcdAsync(() => owners.MerchantForKeyAsync(key, cancellationToken), cancellationToken) is not null, cancellationToken);
        }

        progress($"Merchant and {Accounts} funded accounts ready{(standby is null ? "" : ", known in both regions")}.");
        return key;
    }

    /// <summary>The payment's terminal status at <paramref name="http"/>'s region, or null when that region does not
    /// answer or does not know the payment (the caller submits it again with its key).</summary>
    internal static async Task<string?> PollAsync(HttpClient http, string paymentId, CancellationToken cancellationToken, Action<string>? seen = null)
    {
        var waited = Stopwatch.StartNew();
        while (waited.Elapsed < PaymentDeadline)
        {
            try
            {
                using var response = await http.GetAsync($"/v1/payments/{paymentId}", cancellationToken);
                if (response.StatusCode == HttpStatusCode.NotFound)
                {
                    return null;
                }

                var status = response.StatusCode == HttpStatusCode.OK
                    ? (await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken)).GetProperty("status").GetString()
                    : null;
                seen?.Invoke($"GET {(int)response.StatusCode} {status}");
                if (status is not null && PaymentStatus.IsTerminal(status))
                {
                    return status;
                }
            }
            catch (Exception exception) when (exception is HttpRequestException || (exception is TaskCanceledException && !cancellationToken.IsCancellationRequested))
            {
                return null;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(200), cancellationToken);
        }

        return null;
    }

    private const int MaxLogLinesPerApp = 40;

    /// <summary>On a failed drill, the last lines of each of <paramref name="system"/>'s app logs, which go with its
    /// directory when it stops: a drill failed once in CI under load with nothing left to say why.</summary>
    internal static void ReportLogTails(LocalSystem system, string prefix, Action<string> progress)
    {
        foreach (var path in system.Children.Select(child => child.LogPath).Distinct())
        {
            progress($"{prefix} last lines of {Path.GetFileName(path)}:");
            if (!File.Exists(path))
            {
                progress($"{prefix}   (no log)"); // the report must not hide the drill's own failure
                continue;
            }

            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(stream);
            var tail = new Queue<string>(MaxLogLinesPerApp);
            while (reader.ReadLine() is { } line)
            {
                if (tail.Count == MaxLogLinesPerApp)
                {
                    tail.Dequeue();
                }

                tail.Enqueue(line);
            }

            foreach (var line in tail)
            {
                progress($"{prefix}   {line}");
            }
        }
    }

    internal static HttpClient Client(Uri baseAddress, string key)
    {
        var http = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(10) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return http;
    }

    private const int MaxEtcdAttempts = 10;

    /// <summary>An etcd call of the drill's own set-up, asked again (bounded) when a member did not answer in time: on
    /// two shared cores a member busy with two regions starting can take longer than the client's 1 s connect timeout
    /// (a clean-clone run failed here once), and the platform's own clients retry such an answer the same way. A key
    /// issued twice by a retry is harmless: the drill uses the one it gets.</summary>
    private static async Task<T> EtcdAsync<T>(Func<Task<T>> call, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await call();
            }
            catch (RpcException exception) when (attempt < MaxEtcdAttempts && exception.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(200 * attempt), cancellationToken);
            }
        }
    }

    private static async Task WaitAsync(Func<Task<bool>> condition, CancellationToken cancellationToken)
    {
        var waited = Stopwatch.StartNew();
        while (!await condition())
        {
            if (waited.Elapsed > PaymentDeadline)
            {
                throw new TimeoutException($"The drill's setup did not converge within {PaymentDeadline}.");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(200), cancellationToken);
        }
    }
}

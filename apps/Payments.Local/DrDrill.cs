extern alias ApiApp;

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Payments.Domain;
using Payments.Ledger.Core;
using Payments.LocalCluster;

using ApiStore = ApiApp::Payments.Api.Storage.ApiStore;

namespace Payments.Local;

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
    /// <summary>Per payment, from its first submission (in A) through the loss and the failover to its end in B.</summary>
    public static readonly TimeSpan PaymentDeadline = TimeSpan.FromMinutes(3);
    private static readonly TimeSpan RetryDelay = TimeSpan.FromMilliseconds(250);
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
            (rto, rpo, checkedCount, acknowledged) = await SyncFailoverAsync(cosmos, payments, clients, progress, problems, cancellationToken);
        }

        double lagP99;
        await using (var cosmos = await LocalCosmosServer.StartAsync(cancellationToken))
        {
            lagP99 = await AsyncLagAsync(cosmos, payments, clients, progress, cancellationToken);
        }

        return new Result(Math.Round(rto.TotalSeconds, 1), rpo, lagP99, checkedCount, acknowledged, problems);
    }

    private static async Task<(TimeSpan Rto, int Rpo, int Checked, int Acknowledged)> SyncFailoverAsync(
        LocalCosmosServer cosmos, int payments, int clients, Action<string> progress, List<string> problems, CancellationToken cancellationToken)
    {
        await using var a = await LocalSystem.StartAsync(0, line => progress("[a] " + line), cancellationToken,
            new LocalSystem.RegionSettings("drill-a", "active", cosmos.Endpoint, LocalCosmosServer.Key));
        await using var b = await LocalSystem.StartAsync(0, line => progress("[b] " + line), cancellationToken,
            new LocalSystem.RegionSettings("drill-b", "standby", cosmos.Endpoint, LocalCosmosServer.Key));
        var key = await PrepareAsync(a, b, progress, cancellationToken);
        using var httpA = Client(a.ApiBaseAddress, key);
        using var httpB = Client(b.ApiBaseAddress, key);

        var outcomes = new ConcurrentDictionary<int, (string PaymentId, long Amount, string Creditor, bool AcknowledgedInA, string Status)>();
        var accepted = 0;
        var killed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var lostAt = Stopwatch.StartNew();
        TimeSpan? firstAcceptedInB = null;
        IReadOnlySet<string>? heldByB = null;
        var firstInB = new SemaphoreSlim(1, 1);
        var killer = Task.Run(async () =>
        {
            while (Volatile.Read(ref accepted) < payments / 3)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(20), cancellationToken);
            }

            await a.KillAllAsync();
            lostAt.Restart();
            progress($"Region A killed after {Volatile.Read(ref accepted)} of {payments} payments were accepted.");
            killed.SetResult();
        }, cancellationToken);

        await Parallel.ForEachAsync(Enumerable.Range(0, payments), new ParallelOptions { MaxDegreeOfParallelism = clients, CancellationToken = cancellationToken },
            async (index, token) =>
            {
                var debtor = $"drill-{index % Accounts}";
                var creditor = $"drill-{(index + 1) % Accounts}";
                var amount = 100 + index;
                var body = new { debtorAccountId = debtor, creditorAccountId = creditor, amountMinor = amount, currency = "EUR" };
                var waited = Stopwatch.StartNew();
                string? paymentId = null;
                var acknowledgedInA = false;
                while (waited.Elapsed < PaymentDeadline)
                {
                    var inB = killed.Task.IsCompleted;
                    var http = inB ? httpB : httpA;
                    try
                    {
                        // (Re)submitting is safe: the same key is the same payment, in either region.
                        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/payments") { Content = JsonContent.Create(body) };
                        request.Headers.Add("Idempotency-Key", $"drill-{index}");
                        using var response = await http.SendAsync(request, token);
                        if (response.StatusCode != HttpStatusCode.Accepted)
                        {
                            await Task.Delay(RetryDelay, token);
                            continue;
                        }

                        var first = paymentId is null;
                        paymentId = (await response.Content.ReadFromJsonAsync<JsonElement>(token)).GetProperty("paymentId").GetString()!;
                        if (first)
                        {
                            Interlocked.Increment(ref accepted);
                        }

                        if (inB && firstAcceptedInB is null)
                        {
                            await firstInB.WaitAsync(token);
                            try
                            {
                                if (firstAcceptedInB is null)
                                {
                                    firstAcceptedInB = lostAt.Elapsed;
                                    // What B holds at the moment it takes writes: the RPO is measured against this.
                                    heldByB = (await new JournalReader(b.Ledger).ReadAllAsync(2_000_000, token)).Select(entry => entry.TransferId.Value).ToHashSet();
                                }
                            }
                            finally
                            {
                                firstInB.Release();
                            }
                        }

                        var status = await PollAsync(http, paymentId, token);
                        if (status is null)
                        {
                            continue; // the region went away while we watched: submit again (same key) where we are now
                        }

                        acknowledgedInA |= !inB && status == "completed";
                        outcomes[index] = (paymentId, amount, creditor, acknowledgedInA, status);
                        return;
                    }
                    catch (HttpRequestException)
                    {
                        await Task.Delay(RetryDelay, token); // region A is gone: the next attempt goes to B once we know
                    }
                    catch (TaskCanceledException) when (!token.IsCancellationRequested)
                    {
                        await Task.Delay(RetryDelay, token);
                    }
                }

                problems.Add($"drill-{index}: no terminal status within {PaymentDeadline}");
            });
        await killer;

        // Every payment's final status as region B reports it (a client that watched it complete in A asks again).
        foreach (var (index, outcome) in outcomes)
        {
            var status = await PollAsync(httpB, outcome.PaymentId, cancellationToken);
            if (status is not ("completed" or "failed" or "compensated"))
            {
                problems.Add($"drill-{index} ({outcome.PaymentId}): {status ?? "unknown"} in region B");
            }
        }

        var rpo = outcomes.Values.Count(outcome => outcome.AcknowledgedInA
            && heldByB is not null && !heldByB.Contains(TransferId.Parse(outcome.PaymentId).Derive("credit").Value));
        foreach (var (check, _, detail) in (await LedgerReport.BuildAsync(b.Ledger, cancellationToken)).Checks().Where(check => !check.Holds))
        {
            problems.Add($"region B: {check} broken ({detail})");
        }

        foreach (var creditor in Enumerable.Range(0, Accounts).Select(index => $"drill-{index}"))
        {
            var expectedIn = outcomes.Values.Where(outcome => outcome.Creditor == creditor && outcome.Status == "completed").Sum(outcome => outcome.Amount);
            var account = await b.Ledger.GetAccountAsync(AccountId.Parse(creditor), cancellationToken);
            var expectedOut = outcomes.Where(pair => $"drill-{pair.Key % Accounts}" == creditor && pair.Value.Status == "completed").Sum(pair => pair.Value.Amount);
            if (account?.BalanceMinor != FundsMinor + expectedIn - expectedOut)
            {
                problems.Add($"{creditor}: balance {account?.BalanceMinor} in region B, expected {FundsMinor + expectedIn - expectedOut} (a payment applied twice or lost)");
            }
        }

        if (firstAcceptedInB is null)
        {
            problems.Add("region B never accepted a payment");
        }

        await CheckReturnedRegionStaysPassiveAsync(a, b, progress, problems, cancellationToken);

        return (firstAcceptedInB ?? TimeSpan.MaxValue, rpo, outcomes.Count, outcomes.Values.Count(outcome => outcome.AcknowledgedInA));
    }

    /// <summary>Region A comes back (its etcd and its failover service): it must see region B's higher epoch and stay
    /// passive — no epoch mirrored in its etcd, so its ledger refuses every write — and its journal must hold no entry
    /// of its own from after B's promotion (entries it copies from B carry B's transfer ids).</summary>
    private static async Task CheckReturnedRegionStaysPassiveAsync(
        LocalSystem a, LocalSystem b, Action<string> progress, List<string> problems, CancellationToken cancellationToken)
    {
        await a.RestartEtcdAndFailoverAsync(line => progress("[a] " + line), cancellationToken);
        using var failover = new HttpClient { BaseAddress = a.FailoverBaseAddress, Timeout = TimeSpan.FromSeconds(5) };
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
        var mirror = new Payments.Etcd.RegionEpochMirror(a.Etcd, LocalSystem.KeyPrefix);
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
            new LocalSystem.RegionSettings("async-a", "active", cosmos.Endpoint, LocalCosmosServer.Key, ReplicationMode: "async"));
        var key = await PrepareAsync(a, standby: null, progress, cancellationToken);
        using var http = Client(a.ApiBaseAddress, key);
        using var ledger = new HttpClient { BaseAddress = new Uri(a.LedgerUrl), Timeout = TimeSpan.FromSeconds(5) };
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
    private static async Task<string> PrepareAsync(LocalSystem active, LocalSystem? standby, Action<string> progress, CancellationToken cancellationToken)
    {
        using var failover = new HttpClient { BaseAddress = active.FailoverBaseAddress, Timeout = TimeSpan.FromSeconds(5) };
        await WaitAsync(async () => (await failover.GetFromJsonAsync<JsonElement>("/admin/v1/region", cancellationToken)).GetProperty("writable").GetBoolean(), cancellationToken);
        var key = await new ApiStore(active.Etcd, LocalSystem.KeyPrefix + "api/").IssueApiKeyAsync("drill-merchant", cancellationToken);
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
            var owners = new ApiStore(standby.Etcd, LocalSystem.KeyPrefix + "api/");
            await WaitAsync(async () => await owners.AccountOwnerAsync($"drill-{Accounts - 1}", cancellationToken) is not null
                                        && await owners.MerchantForKeyAsync(key, cancellationToken) is not null, cancellationToken);
        }

        progress($"Merchant and {Accounts} funded accounts ready{(standby is null ? "" : ", known in both regions")}.");
        return key;
    }

    /// <summary>The payment's terminal status at <paramref name="http"/>'s region, or null when that region does not
    /// answer or does not know the payment (the caller submits it again with its key).</summary>
    private static async Task<string?> PollAsync(HttpClient http, string paymentId, CancellationToken cancellationToken)
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

                if (response.StatusCode == HttpStatusCode.OK
                    && (await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken)).GetProperty("status").GetString() is { } status
                    && status is "completed" or "failed" or "compensated")
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

    private static HttpClient Client(Uri baseAddress, string key)
    {
        var http = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(10) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return http;
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

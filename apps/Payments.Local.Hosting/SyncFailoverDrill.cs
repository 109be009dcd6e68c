using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Payments.Domain;
using Payments.Failover.Core;
using Payments.Ledger.Core;
using Payments.Ledger.Core.Invariants;
using Payments.LocalCluster;

namespace Payments.Local.Hosting;

/// <summary>The drill's sync phase (see <see cref="DrDrill"/>): region A killed under load once a third of the
/// payments were accepted, clients retrying with the same Idempotency-Keys in region B; then what B holds is checked
/// against what the clients were told.</summary>
internal sealed class SyncFailoverDrill(LocalCosmosServer cosmos, int payments, int clients, Action<string> progress, List<string> problems)
{
    private const int MaxJournalEntries = 2_000_000;
    private static readonly TimeSpan KillPollInterval = TimeSpan.FromMilliseconds(20);

    private readonly ConcurrentDictionary<int, Outcome> outcomes = new();
    private readonly TaskCompletionSource killed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Stopwatch lostAt = Stopwatch.StartNew();
    private readonly SemaphoreSlim firstInB = new(1, 1);
    private int accepted;
    private TimeSpan? firstAcceptedInB;
    private IReadOnlySet<string>? heldByB;

    private sealed record Outcome(string PaymentId, long Amount, string Creditor, bool AcknowledgedInA, string Status);

    public async Task<(TimeSpan Rto, int Rpo, int Checked, int Acknowledged)> RunAsync(CancellationToken cancellationToken)
    {
        await using var a = await LocalSystem.StartAsync(0, line => progress("[a] " + line), cancellationToken,
            new LocalSystem.RegionSettings("drill-a", "drill-b", RegionRole.Active, cosmos.Endpoint, LocalCosmosServer.Key));
        await using var b = await LocalSystem.StartAsync(0, line => progress("[b] " + line), cancellationToken,
            new LocalSystem.RegionSettings("drill-b", "drill-a", RegionRole.Standby, cosmos.Endpoint, LocalCosmosServer.Key));
        var key = await DrDrill.PrepareAsync(a, b, progress, cancellationToken);
        using var httpA = DrDrill.Client(a.ApiBaseAddress, key);
        using var httpB = DrDrill.Client(b.ApiBaseAddress, key);
        var killer = KillWhenAThirdIsAcceptedAsync(a, cancellationToken);
        await Parallel.ForEachAsync(Enumerable.Range(0, payments), new ParallelOptions { MaxDegreeOfParallelism = clients, CancellationToken = cancellationToken },
            async (index, token) => await PayAsync(index, httpA, httpB, b, token));
        await killer;

        await CheckRegionBAsync(httpB, b, cancellationToken);
        await DrDrill.CheckReturnedRegionStaysPassiveAsync(a, b, progress, problems, cancellationToken);
        if (problems.Count > 0)
        {
            DrDrill.ReportLogTails(b, "[b]", progress);
        }

        var rpo = outcomes.Values.Count(outcome => outcome.AcknowledgedInA
            && heldByB is not null && !heldByB.Contains(TransferId.Parse(outcome.PaymentId).Derive("credit").Value));
        return (firstAcceptedInB ?? TimeSpan.MaxValue, rpo, outcomes.Count, outcomes.Values.Count(outcome => outcome.AcknowledgedInA));
    }

    private async Task KillWhenAThirdIsAcceptedAsync(LocalSystem a, CancellationToken cancellationToken)
    {
        await Task.Yield();
        while (Volatile.Read(ref accepted) < payments / 3)
        {
            await Task.Delay(KillPollInterval, cancellationToken);
        }

        await a.KillAllAsync();
        lostAt.Restart();
        progress($"Region A killed after {Volatile.Read(ref accepted)} of {payments} payments were accepted.");
        killed.SetResult();
    }

    /// <summary>One client's payment: submitted in A until A is lost, then in B, always with the same key, until it
    /// reaches a terminal status (or <see cref="DrDrill.PaymentDeadline"/> passes).</summary>
    private async Task PayAsync(int index, HttpClient httpA, HttpClient httpB, LocalSystem b, CancellationToken token)
    {
        var creditor = $"drill-{(index + 1) % DrDrill.Accounts}";
        var amount = 100 + index;
        var body = new { debtorAccountId = $"drill-{index % DrDrill.Accounts}", creditorAccountId = creditor, amountMinor = amount, currency = "EUR" };
        var waited = Stopwatch.StartNew();
        string? paymentId = null;
        var acknowledgedInA = false;
        var last = "nothing sent";
        while (waited.Elapsed < DrDrill.PaymentDeadline)
        {
            var inB = killed.Task.IsCompleted;
            var http = inB ? httpB : httpA;
            try
            {
                // (Re)submitting is safe: the same key is the same payment, in either region.
                using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/payments") { Content = JsonContent.Create(body) };
                request.Headers.Add("Idempotency-Key", $"drill-{index}");
                using var response = await http.SendAsync(request, token);
                last = $"POST to {(inB ? "B" : "A")}: {(int)response.StatusCode}";
                if (response.StatusCode != HttpStatusCode.Accepted)
                {
                    last += " " + await response.Content.ReadAsStringAsync(token);
                    await Task.Delay(DrDrill.RetryDelay, token);
                    continue;
                }

                var first = paymentId is null;
                paymentId = (await response.Content.ReadFromJsonAsync<JsonElement>(token)).GetProperty("paymentId").GetString()!;
                if (first)
                {
                    Interlocked.Increment(ref accepted);
                }

                if (inB)
                {
                    await NoteFirstAcceptedInBAsync(b, token);
                }

                if (await DrDrill.PollAsync(http, paymentId, token, seen => last = $"{paymentId} in {(inB ? "B" : "A")}: {seen}") is not { } status)
                {
                    continue; // the region went away while we watched: submit again (same key) where we are now
                }

                acknowledgedInA |= !inB && status == PaymentStatus.Completed;
                outcomes[index] = new Outcome(paymentId, amount, creditor, acknowledgedInA, status);
                return;
            }
            catch (Exception exception) when (exception is HttpRequestException || (exception is TaskCanceledException && !token.IsCancellationRequested))
            {
                last = $"{(inB ? "B" : "A")}: {exception.GetType().Name}";
                await Task.Delay(DrDrill.RetryDelay, token); // region A is gone: the next attempt goes to B once we know
            }
        }

        lock (problems)
        {
            problems.Add($"drill-{index}: no terminal status within {DrDrill.PaymentDeadline} (last: {last})"); // clients run in parallel
        }
    }

    /// <summary>The RTO's end, and what B holds at the moment it takes writes (the RPO is measured against it).</summary>
    private async Task NoteFirstAcceptedInBAsync(LocalSystem b, CancellationToken token)
    {
        if (firstAcceptedInB is not null)
        {
            return;
        }

        await firstInB.WaitAsync(token);
        try
        {
            if (firstAcceptedInB is null)
            {
                firstAcceptedInB = lostAt.Elapsed;
                heldByB = (await new JournalReader(b.Ledger).ReadAllAsync(MaxJournalEntries, token)).Select(entry => entry.TransferId.Value).ToHashSet();
            }
        }
        finally
        {
            firstInB.Release();
        }
    }

    /// <summary>Every payment terminal as region B reports it (a client that watched it complete in A asks again), the
    /// ledger's invariants in B, and each account's balance equal to what the completed payments imply.</summary>
    private async Task CheckRegionBAsync(HttpClient httpB, LocalSystem b, CancellationToken cancellationToken)
    {
        foreach (var (index, outcome) in outcomes)
        {
            var status = await DrDrill.PollAsync(httpB, outcome.PaymentId, cancellationToken);
            if (!PaymentStatus.IsTerminal(status))
            {
                problems.Add($"drill-{index} ({outcome.PaymentId}): {status ?? "unknown"} in region B");
            }
        }

        var (_, checks) = await LedgerInvariants.CheckAsync(b.Ledger, cancellationToken);
        problems.AddRange(checks.Where(check => !check.Holds).Select(check => $"region B: {check.Name} broken ({check.Detail})"));
        foreach (var account in Enumerable.Range(0, DrDrill.Accounts).Select(index => $"drill-{index}"))
        {
            var completed = outcomes.Where(pair => pair.Value.Status == PaymentStatus.Completed).ToArray();
            var expectedIn = completed.Where(pair => pair.Value.Creditor == account).Sum(pair => pair.Value.Amount);
            var expectedOut = completed.Where(pair => $"drill-{pair.Key % DrDrill.Accounts}" == account).Sum(pair => pair.Value.Amount);
            var balance = (await b.Ledger.GetAccountAsync(AccountId.Parse(account), cancellationToken))?.BalanceMinor;
            if (balance != DrDrill.FundsMinor + expectedIn - expectedOut)
            {
                problems.Add($"{account}: balance {balance} in region B, expected {DrDrill.FundsMinor + expectedIn - expectedOut} (a payment applied twice or lost)");
            }
        }

        if (firstAcceptedInB is null)
        {
            problems.Add("region B never accepted a payment");
        }
    }
}

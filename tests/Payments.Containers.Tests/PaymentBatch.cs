using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Payments.Domain;
using Payments.Testing;

namespace Payments.Containers.Tests;

public sealed record PlannedPayment(string IdempotencyKey, string Debtor, string Creditor, long AmountMinor);

public sealed record PaymentResult(PlannedPayment Plan, string PaymentId, string Status, string? Reason, int Attempts, TimeSpan Elapsed);

/// <summary>What a well-behaved client of the public API does while the system fails underneath it: every request
/// carries an Idempotency-Key and is retried (bounded) on a transport error, a 5xx, a 429 or a 409 "key in use";
/// then the payment is followed until it is terminal. Afterwards, <see cref="AssertExactlyOnceAsync"/> checks the
/// outcome through the API and straight from etcd.</summary>
public sealed class PaymentBatch(HttpClient client, string scenario, int accounts, long fundsMinor)
{
    public const string Currency = "EUR";
    public const int MaxAttempts = 80;
    public static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(2);
    public static readonly TimeSpan PaymentDeadline = TimeSpan.FromMinutes(3);
    private static readonly string[] TerminalStatuses = ["completed", "failed", "compensated"];
    private int accepted;

    /// <summary>Every answer that made the client retry, in order (diagnostics for a slow scenario).</summary>
    public ConcurrentQueue<string> Retries { get; } = new();

    public IReadOnlyList<string> AccountIds { get; } = Enumerable.Range(0, accounts).Select(index => $"{scenario}-{index:D2}").ToArray();

    /// <summary>Payments the API has accepted so far (a fault is injected once the batch is under way).</summary>
    public int Accepted => Volatile.Read(ref accepted);

    public async Task OpenAccountsAsync()
    {
        foreach (var account in AccountIds)
        {
            using var open = await SendAsync(HttpMethod.Post, "/v1/accounts", new { accountId = account, currency = Currency }, idempotencyKey: null);
            Assert.True(open.StatusCode is HttpStatusCode.Created, $"open {account}: {(int)open.StatusCode} {await open.Content.ReadAsStringAsync()}");
            using var deposit = await SendAsync(HttpMethod.Post, $"/v1/accounts/{account}/deposits",
                new { amountMinor = fundsMinor, currency = Currency }, $"{scenario}-deposit-{account}");
            Assert.True(deposit.StatusCode is HttpStatusCode.Created, $"deposit {account}: {(int)deposit.StatusCode} {await deposit.Content.ReadAsStringAsync()}");
        }
    }

    /// <summary>A reproducible plan of small payments among the scenario's accounts (no review, no refusal).</summary>
    public IReadOnlyList<PlannedPayment> Plan(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(index =>
        {
            var debtor = random.Next(accounts);
            var creditor = (debtor + 1 + random.Next(accounts - 1)) % accounts;
            return new PlannedPayment($"{scenario}-payment-{index:D4}", AccountIds[debtor], AccountIds[creditor], random.Next(1, 1_000));
        }).ToArray();
    }

    public async Task<IReadOnlyList<PaymentResult>> RunAsync(IReadOnlyList<PlannedPayment> plan, int clients)
    {
        var results = new ConcurrentBag<PaymentResult>();
        await Parallel.ForEachAsync(plan, new ParallelOptions { MaxDegreeOfParallelism = clients }, async (payment, _) =>
        {
            var clock = Stopwatch.StartNew();
            var (paymentId, attempts) = await CreateAsync(payment);
            Interlocked.Increment(ref accepted);
            var (status, reason) = await WaitForTerminalAsync(paymentId);
            results.Add(new PaymentResult(payment, paymentId, status, reason, attempts, clock.Elapsed));
        });
        return results.OrderBy(result => result.Plan.IdempotencyKey, StringComparer.Ordinal).ToArray();
    }

    /// <summary>Sends (or re-sends) the payment with its key until the API answers 202; returns its id.</summary>
    public async Task<(string PaymentId, int Attempts)> CreateAsync(PlannedPayment payment)
    {
        var body = new { debtorAccountId = payment.Debtor, creditorAccountId = payment.Creditor, amountMinor = payment.AmountMinor, currency = Currency };
        using var response = await SendAsync(HttpMethod.Post, "/v1/payments", body, payment.IdempotencyKey);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"payment {payment.IdempotencyKey}: {(int)response.StatusCode} {text}");
        var attempts = response.RequestMessage?.Options.TryGetValue(AttemptsOption, out var count) == true ? count : 1;
        return (JsonDocument.Parse(text).RootElement.GetProperty("paymentId").GetString()!, attempts);
    }

    /// <summary>The checks every scenario ends with: each payment terminal with the expected status, through the API
    /// and in its etcd record; each idempotency key answered with the same payment again; the ledger's invariants
    /// (conservation, no transfer twice in the journal, the journal replays to the balances); and every balance
    /// exactly what the completed payments imply — a payment applied twice or lost shows here.</summary>
    public async Task AssertExactlyOnceAsync(ContainerSystem system, IReadOnlyList<PaymentResult> results, Func<PaymentResult, string> expectedStatus)
    {
        Assert.Equal(results.Count, results.Select(result => result.PaymentId).Distinct().Count());
        foreach (var result in results)
        {
            Assert.True(expectedStatus(result) == result.Status, $"{result.Plan.IdempotencyKey}: {result.Status} ({result.Reason}), expected {expectedStatus(result)}");
            var (again, _) = await CreateAsync(result.Plan);
            Assert.Equal(result.PaymentId, again);
            var record = await ReadRetryingAsync(() => system.Records.GetAsync(result.PaymentId, CancellationToken.None));
            Assert.True(record is { Record.IsTerminal: true }, $"{result.PaymentId}: etcd record {record?.Record.Status ?? "missing"}");
            Assert.Equal(result.Status, record!.Value.Record.Status);
        }

        await LedgerAssert.InvariantsHoldAsync(system.LedgerStore, CancellationToken.None);
        var completed = results.Where(result => result.Status == "completed").ToArray();
        foreach (var account in AccountIds)
        {
            var expected = fundsMinor
                - completed.Where(result => result.Plan.Debtor == account).Sum(result => result.Plan.AmountMinor)
                + completed.Where(result => result.Plan.Creditor == account).Sum(result => result.Plan.AmountMinor);
            var stored = await system.LedgerStore.GetAccountAsync(AccountId.Parse(account), CancellationToken.None);
            Assert.NotNull(stored);
            Assert.True(expected == stored.BalanceMinor, $"{account}: balance {stored.BalanceMinor}, expected {expected} from the completed payments");
            Assert.True(stored.PendingDebitMinor == 0, $"{account}: {stored.PendingDebitMinor} still held after every payment ended");
        }
    }

    /// <summary>A direct etcd read, retried (bounded) while the member the test's connection is pinned to is down:
    /// the connection moves to another member after the first failure.</summary>
    private static async Task<T> ReadRetryingAsync<T>(Func<Task<T>> read)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await read();
            }
            catch (Grpc.Core.RpcException) when (attempt < MaxReadAttempts)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(100 * attempt));
            }
        }
    }

    private const int MaxReadAttempts = 5;

    public async Task<(string Status, string? Reason)> WaitForTerminalAsync(string paymentId, string? until = null)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            using var response = await SendAsync(HttpMethod.Get, $"/v1/payments/{paymentId}", body: null, idempotencyKey: null);
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET {paymentId}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            var payment = await response.Content.ReadFromJsonAsync<JsonElement>();
            var status = payment.GetProperty("status").GetString()!;
            if (until is null ? TerminalStatuses.Contains(status) : status == until)
            {
                return (status, payment.TryGetProperty("reason", out var reason) ? reason.GetString() : null);
            }

            Assert.True(waited.Elapsed < PaymentDeadline, $"Payment {paymentId} still {status} after {PaymentDeadline}.");
            await Task.Delay(TimeSpan.FromMilliseconds(250));
        }
    }

    private static readonly HttpRequestOptionsKey<int> AttemptsOption = new("attempts");

    /// <summary>One request, retried with the same key (bounded by <see cref="MaxAttempts"/> and
    /// <see cref="PaymentDeadline"/>) while the answer says "not now": the transport failed, the load balancer or a
    /// replica answered 5xx, the rate limit said 429, or the same key is still being worked on (409).</summary>
    public async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, object? body, string? idempotencyKey)
    {
        var waited = Stopwatch.StartNew();
        string last = "";
        for (var attempt = 1; attempt <= MaxAttempts && waited.Elapsed < PaymentDeadline; attempt++)
        {
            var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
            request.Options.Set(AttemptsOption, attempt);
            if (idempotencyKey is not null)
            {
                request.Headers.Add("Idempotency-Key", idempotencyKey);
            }

            TimeSpan? retryAfter = null;
            try
            {
                var response = await client.SendAsync(request);
                await response.Content.LoadIntoBufferAsync(); // readable again by the caller
                var text = await response.Content.ReadAsStringAsync();
                if (!IsRetryable(response.StatusCode, text))
                {
                    return response;
                }

                last = $"{(int)response.StatusCode} {text}";
                Retries.Enqueue($"{idempotencyKey ?? path} attempt {attempt} at {waited.Elapsed.TotalSeconds:F1} s: {last}");
                retryAfter = response.Headers.RetryAfter?.Delta;
                response.Dispose();
            }
            catch (Exception exception) when (exception is HttpRequestException or TaskCanceledException)
            {
                last = exception.Message; // the connection broke or timed out: the request may or may not have landed
                Retries.Enqueue($"{idempotencyKey ?? path} attempt {attempt} at {waited.Elapsed.TotalSeconds:F1} s: {last}");
            }
            finally
            {
                request.Dispose();
            }

            var backoff = TimeSpan.FromMilliseconds(Math.Min(MaxBackoff.TotalMilliseconds, 50 * Math.Pow(2, Math.Min(attempt, 8))));
            await Task.Delay(retryAfter is { } delta && delta < MaxBackoff ? delta : backoff);
        }

        throw new TimeoutException($"{method} {path} ({idempotencyKey}): no final answer after {MaxAttempts} attempts / {PaymentDeadline}; last: {last}");
    }

    private static bool IsRetryable(HttpStatusCode status, string body) =>
        (int)status >= 500 || status is HttpStatusCode.TooManyRequests or HttpStatusCode.RequestTimeout
        || (status == HttpStatusCode.Conflict && body.Contains("/idempotency-key-in-use", StringComparison.Ordinal));
}

using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Payments.Domain;
using Payments.Local.Hosting;
using Xunit.Abstractions;

namespace Payments.Local.SystemTests;

/// <summary>Payments in flight ride out a dependency that is down for a while, and a workflow engine that lost every
/// workflow: each ends terminal, its status true to the ledger (issue 10's findings, each failing before).</summary>
[Collection(LocalSystemCollection.Name)]
public sealed class FaultRecoveryTests(ITestOutputHelper output)
{
    public const long FundsMinor = 1_000_000;
    public const int Accounts = 6;
    public static readonly TimeSpan TestTimeout = TimeSpan.FromMinutes(6);

    /// <summary>How long the risk service stays down: longer than any retry policy of a request, shorter than the saga's budget.</summary>
    public static readonly TimeSpan RiskOutage = TimeSpan.FromSeconds(60);

    /// <summary>A payment must end within this after its fault is over (the sweeper's grace and pace included).</summary>
    public static readonly TimeSpan TerminalBound = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task RiskServiceDownForAMinute_ThePaymentsInFlight_CompleteAfterItReturns()
    {
        using var timeout = new CancellationTokenSource(TestTimeout);
        await using var system = await LocalSystem.StartAsync(0, output.WriteLine, timeout.Token);
        using var http = await MerchantClients.CreateAsync(system, "risk-outage", TimeSpan.FromSeconds(30), timeout.Token);
        var accounts = await OpenAccountsAsync(http, "risk", timeout.Token);

        await system.App("risk").KillAsync();
        var paymentIds = await SubmitAsync(http, accounts, "risk", count: 20, timeout.Token);
        // The fault's duration is the test's input, not a wait for state: the payments wait at their risk check meanwhile.
        await Task.Delay(RiskOutage, timeout.Token);
        Assert.All(await Task.WhenAll(paymentIds.Select(id => StatusAsync(http, id, timeout.Token))), status => Assert.Equal(PaymentStatus.Pending, status));
        await system.RestartAsync("risk", timeout.Token);

        var statuses = await Task.WhenAll(paymentIds.Select(id => TerminalStatusAsync(http, id, timeout.Token)));

        Assert.All(statuses, status => Assert.Equal(PaymentStatus.Completed, status));
        await AssertChecksHoldAsync(system, timeout.Token);
    }

    [Fact]
    public async Task WorkflowSidecarRestarted_With50PaymentsInFlight_EveryPaymentEndsTerminal_AndTrue()
    {
        using var timeout = new CancellationTokenSource(TestTimeout);
        await using var system = await LocalSystem.StartAsync(0, output.WriteLine, timeout.Token);
        using var http = await MerchantClients.CreateAsync(system, "sidecar-restart", TimeSpan.FromSeconds(30), timeout.Token);
        var accounts = await OpenAccountsAsync(http, "wf", timeout.Token);

        var paymentIds = await SubmitAsync(http, accounts, "wf", count: 50, timeout.Token);
        // The in-memory engine loses every workflow: the sweeper must find the payments and run their sagas again.
        await system.RestartAsync("workflow-sidecar", timeout.Token);
        output.WriteLine("Workflow sidecar restarted with every workflow lost");

        var statuses = await Task.WhenAll(paymentIds.Select(id => TerminalStatusAsync(http, id, timeout.Token)));

        Assert.All(statuses, status => Assert.True(PaymentStatus.IsTerminal(status), status));
        output.WriteLine(string.Join(", ", statuses.GroupBy(status => status).Select(group => $"{group.Key} {group.Count()}")));
        await AssertChecksHoldAsync(system, timeout.Token);
    }

    private static async Task AssertChecksHoldAsync(LocalSystem system, CancellationToken cancellationToken)
    {
        var (checks, _) = await SystemChecks.RunAsync(system, cancellationToken);
        Assert.All(checks, check => Assert.True(check.Holds, $"{check.Name}: {check.Detail}"));
        Assert.Contains(checks, check => check.Name == SystemChecks.StatusCheckName);
    }

    private static Task<List<string>> OpenAccountsAsync(HttpClient http, string prefix, CancellationToken cancellationToken) =>
        MerchantClients.OpenFundedAccountsAsync(http, Enumerable.Range(0, Accounts).Select(index => $"{prefix}-{index}"), "EUR", FundsMinor, cancellationToken);

    /// <summary>Submits payments (small amounts among funded accounts: each can only complete) and returns their ids; a
    /// 503 (a start that took too long on a loaded CI machine) is retried with the same key, as clients are told to.</summary>
    private static async Task<string[]> SubmitAsync(HttpClient http, List<string> accounts, string prefix, int count, CancellationToken cancellationToken) =>
        await Task.WhenAll(Enumerable.Range(0, count).Select(async index =>
        {
            using var response = await WellBehavedClient.SendAsync(http, () => new HttpRequestMessage(HttpMethod.Post, "/v1/payments")
            {
                Content = JsonContent.Create(new
                {
                    debtorAccountId = accounts[index % Accounts], creditorAccountId = accounts[(index + 1) % Accounts], amountMinor = 100 + index, currency = "EUR",
                }),
                Headers = { { "Idempotency-Key", $"{prefix}-pay-{index}" } },
            }, cancellationToken);
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            return (await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken)).GetProperty("paymentId").GetString()!;
        }));

    private static async Task<string> StatusAsync(HttpClient http, string paymentId, CancellationToken cancellationToken) =>
        (await http.GetFromJsonAsync<JsonElement>($"/v1/payments/{paymentId}", cancellationToken)).GetProperty("status").GetString()!;

    private static async Task<string> TerminalStatusAsync(HttpClient http, string paymentId, CancellationToken cancellationToken)
    {
        var waited = Stopwatch.StartNew();
        var (status, reason) = await PaymentPolling.WaitForTerminalAsync(http, paymentId, TerminalBound, TimeSpan.FromMilliseconds(250), null, cancellationToken);
        Assert.True(PaymentStatus.IsTerminal(status), $"Payment {paymentId} not terminal after {waited.Elapsed}: {status}");
        return reason is null ? status : $"{status}:{reason}" is var described && status == PaymentStatus.Completed ? status : described;
    }
}

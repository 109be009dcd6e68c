using System.Diagnostics;
using System.Net;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Payments.Api.Apis;
using Payments.Merchants;
using Payments.Orchestrator.Client.Gateway;
using Payments.Orchestrator.Client.Models;

namespace Payments.Api.FunctionalTests;

/// <summary>Issue 14 item 1, status without polling: a client waits on the payment with one request and hears of the
/// change as it happens; the saga writes every status a client sees into the payment record, so reads never ask the
/// orchestrator. Fails on the code before it: <c>?wait=</c> was ignored (the request answered at once), and a read of
/// a payment not yet finished asked the orchestrator every time.</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class PaymentStatusWaitTests(ApiSystemFixture system)
{
    private static readonly TimeSpan WaitBound = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task OneWaitingRequest_AnswersWhenTheReviewerDecides_AndNoReadAsksTheOrchestrator()
    {
        var asked = new WorkflowReads();
        await using var replica = StartReplicaCounting(asked);
        using var admin = MerchantKeysTests.Admin(system.BaseAddress);
        var merchant = MerchantKeysTests.NewMerchantId();
        await MerchantKeysTests.CreateMerchantAsync(admin, merchant);
        var (creatorKey, _) = await MerchantKeysTests.IssueAsync(admin, merchant, [.. ApiScopes.All]);
        var (reviewerKey, _) = await MerchantKeysTests.IssueAsync(admin, merchant, ApiScopes.PaymentsApprove);
        await using var creator = await EdgeHost.ClientThroughAsync(replica.ClientOptions.BaseAddress, creatorKey);
        await using var reviewer = await EdgeHost.ClientThroughAsync(replica.ClientOptions.BaseAddress, reviewerKey);
        var paymentId = await AwaitingApprovalAsync(creator.Http, merchant);

        // One request, waiting while the payment awaits its reviewer; it can only answer otherwise once the reviewer
        // decided, because the decision is sent only after the replica counts the request among its waiters.
        var waits = replica.Services.GetRequiredService<PaymentStatusWaits>();
        var waiting = creator.Http.GetAsync($"/v1/payments/{paymentId}?wait=20&status=awaiting_approval");
        await PollUntilAsync(() => waits.Waiting >= 1 || waiting.IsCompleted);
        Assert.False(waiting.IsCompleted, "The request answered before any change: it did not wait.");
        using var approval = await reviewer.Http.SendJsonAsync($"/v1/payments/{paymentId}/approve", "{}", null);
        Assert.Equal(HttpStatusCode.Accepted, approval.StatusCode);
        using var answer = await waiting;
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        Assert.NotEqual("awaiting_approval", (await answer.JsonAsync()).GetProperty("status").GetString());

        // Waiting again from the status just seen ends at the outcome; naming a status the payment left answers at once.
        var final = await WaitUntilTerminalAsync(creator.Http, paymentId);
        Assert.Equal("completed", final);
        using var left = await creator.Http.GetAsync($"/v1/payments/{paymentId}?wait=20&status=pending");
        Assert.Equal("completed", (await left.JsonAsync()).GetProperty("status").GetString());
        Assert.Equal(0, asked.Count);
    }

    /// <summary>Found by a probe: a wait begun with a key answered the payment 13 s after the key was revoked (the key
    /// was checked only when the request came). The wait checks it again before it answers.</summary>
    [Fact]
    public async Task AWaitWhoseKeyIsRevokedMeanwhile_Answers401_NotThePayment()
    {
        await using var replica = system.StartReplica(_ => { });
        using var admin = MerchantKeysTests.Admin(system.BaseAddress);
        var merchant = MerchantKeysTests.NewMerchantId();
        await MerchantKeysTests.CreateMerchantAsync(admin, merchant);
        var (creatorKey, _) = await MerchantKeysTests.IssueAsync(admin, merchant, [.. ApiScopes.All]);
        var (readerKey, readerKeyId) = await MerchantKeysTests.IssueAsync(admin, merchant, ApiScopes.PaymentsRead);
        await using var creator = await EdgeHost.ClientThroughAsync(replica.ClientOptions.BaseAddress, creatorKey);
        await using var reader = await EdgeHost.ClientThroughAsync(replica.ClientOptions.BaseAddress, readerKey);
        var paymentId = await AwaitingApprovalAsync(creator.Http, merchant); // stays so: nobody decides

        var waits = replica.Services.GetRequiredService<PaymentStatusWaits>();
        var waiting = reader.Http.GetAsync($"/v1/payments/{paymentId}?wait=20&status=awaiting_approval");
        await PollUntilAsync(() => waits.Waiting >= 1 || waiting.IsCompleted);
        Assert.False(waiting.IsCompleted, "The request answered before the revocation: it did not wait.");
        using (var revoked = await admin.DeleteAsync($"/admin/v1/merchants/{merchant}/keys/{readerKeyId}"))
        {
            Assert.Equal(HttpStatusCode.NoContent, revoked.StatusCode);
        }

        using var answer = await waiting;
        Assert.Equal(HttpStatusCode.Unauthorized, answer.StatusCode);
        Assert.EndsWith("/unauthorized", (await answer.JsonAsync()).GetProperty("type").GetString());
    }

    [Theory]
    [InlineData("wait=31", "wait")]
    [InlineData("wait=-1", "wait")]
    [InlineData("wait=soon", "wait")]
    [InlineData("wait=1&wait=2", "wait")]
    [InlineData("wait=1&status=done", "status")]
    // A black-box probe: a misspelt parameter was ignored, and the read answered at once instead of waiting.
    [InlineData("wiat=30", "query", "Unknown query parameter: 'wiat'; this endpoint takes")]
    [InlineData("wait=5&timeout=5", "query")]
    // A probe: "?=" was answered "Unknown query parameter a parameter with another name".
    [InlineData("=", "query", "Unknown query parameter: one with an empty name; this endpoint takes")]
    public async Task AnInvalidWait_IsRefusedWithTheFieldNamed(string query, string field, string? saying = null)
    {
        using var client = await system.NewMerchantClientAsync();
        using var response = await client.GetAsync($"/v1/payments/pay_000000000000000000000000?{query}");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await response.JsonAsync();
        Assert.EndsWith("/validation-failed", problem.GetProperty("type").GetString());
        Assert.True(problem.GetProperty("errors").TryGetProperty(field, out var error), $"No error for {field}: {problem}");
        Assert.StartsWith(saying ?? "", error.GetString(), StringComparison.Ordinal);
    }

    /// <summary>Asks with <c>?wait=</c> from each status seen until the payment is final: a few requests, not a poll.</summary>
    private static async Task<string> WaitUntilTerminalAsync(HttpClient client, string paymentId)
    {
        const int MaxRequests = 8; // pending, then final; more only if the machine is very slow (each waits 20 s)
        string? status = null;
        for (var request = 0; request < MaxRequests; request++)
        {
            using var response = await client.GetAsync($"/v1/payments/{paymentId}?wait=20" + (status is null ? string.Empty : "&status=" + status));
            status = (await response.JsonAsync()).GetProperty("status").GetString()!;
            if (status is "completed" or "failed" or "compensated")
            {
                return status;
            }
        }

        return $"still {status} after {MaxRequests} waits";
    }

    /// <summary>A payment of <paramref name="merchant"/> above the review threshold, between two new accounts, once the
    /// saga's own record says it awaits approval.</summary>
    private static async Task<string> AwaitingApprovalAsync(HttpClient creator, string merchant)
    {
        var (debtor, creditor) = ($"{merchant}-d", $"{merchant}-c");
        await creator.OpenAccountAsync(debtor, fundsMinor: ApiSystemFixture.ReviewThresholdMinor * 2);
        await creator.OpenAccountAsync(creditor);
        var paymentId = (await (await creator.PayAsync(debtor, creditor, ApiSystemFixture.ReviewThresholdMinor + 1)).JsonAsync())
            .GetProperty("paymentId").GetString()!;
        await creator.WaitForStatusAsync(paymentId, "awaiting_approval");
        return paymentId;
    }

    private static async Task PollUntilAsync(Func<bool> condition)
    {
        var waited = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(waited.Elapsed < WaitBound, "The waiting request was never counted.");
            await Task.Delay(10);
        }
    }

    private WebApplicationFactory<Program> StartReplicaCounting(WorkflowReads asked) =>
        system.StartReplica(web => web.ConfigureTestServices(services =>
        {
            var real = services.Last(service => service.ServiceType == typeof(IPaymentWorkflows));
            services.AddTransient<IPaymentWorkflows>(provider => new CountingWorkflows((IPaymentWorkflows)real.ImplementationFactory!(provider), asked));
        }));

    private sealed class WorkflowReads
    {
        public int Count;
    }

    /// <summary>The real orchestrator client, counting the reads of workflow state.</summary>
    private sealed class CountingWorkflows(IPaymentWorkflows real, WorkflowReads asked) : IPaymentWorkflows
    {
        public Task StartAsync(PaymentInput input, CancellationToken cancellationToken) => real.StartAsync(input, cancellationToken);

        public Task ResumeAsync(PaymentInput input, CancellationToken cancellationToken) => real.ResumeAsync(input, cancellationToken);

        public Task<PaymentWorkflowState?> GetAsync(string paymentId, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref asked.Count);
            return real.GetAsync(paymentId, cancellationToken);
        }

        public Task RaiseApprovalAsync(string paymentId, ApprovalDecision decision, CancellationToken cancellationToken) =>
            real.RaiseApprovalAsync(paymentId, decision, cancellationToken);
    }
}

using System.Collections.Concurrent;
using System.Diagnostics;
using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Workflows;
using Payments.Telemetry;
using Payments.Testing;

namespace Payments.Orchestrator.IntegrationTests;

[Collection(SagaCollection.Name)]
public sealed class SagaTracingTests(SagaFixture saga)
{
    [Fact]
    public async Task SagaSteps_AndTheirLedgerTransactions_JoinTheTraceOfTheRequestThatStartedThePayment()
    {
        var spans = new ConcurrentBag<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is PaymentsTelemetry.Name or "test",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Add,
        };
        ActivitySource.AddActivityListener(listener);
        using var testSource = new ActivitySource("test");
        var debtor = AccountId.Parse($"d-{Guid.NewGuid():N}");
        var creditor = AccountId.Parse($"c-{Guid.NewGuid():N}");
        await saga.Ledger.OpenAccountAsync(debtor, Currency.Usd, 0, CancellationToken.None);
        await saga.Ledger.OpenAccountAsync(creditor, Currency.Usd, 0, CancellationToken.None);
        await saga.Ledger.TransferAsync(new TransferRequest.Single(TransferId.Parse($"f-{debtor}"), AccountId.ExternalFunding(Currency.Usd), debtor, new Money(500, Currency.Usd))
        {
            IssuedAt = DateTimeOffset.UtcNow,
        },
        CancellationToken.None);
        PaymentInput payment;
        ActivityTraceId traceId;
        using (var request = testSource.StartActivity("POST /v1/payments"))
        {
            // As the API does: the request's traceparent goes into the saga's input.
            traceId = request!.TraceId;
            payment = new PaymentInput(new PaymentOrder($"pay-{Guid.NewGuid():N}", "m", debtor.Value, creditor.Value, 100, "USD", null), TimeSpan.FromMinutes(1), request.Id);
            await saga.Workflows.ScheduleBoundedAsync(nameof(PaymentWorkflowV2), payment.PaymentId, payment);
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await saga.Workflows.WaitForWorkflowCompletionAsync(payment.PaymentId, true, timeout.Token);

        foreach (var step in new[] { "saga.AssessPaymentActivity", "saga.MoveMoneyActivity" })
        {
            var span = Assert.Single(spans, span => span.OperationName == step && (string?)span.GetTagItem("payment.id") == payment.PaymentId);
            Assert.Equal(traceId, span.TraceId);
        }

        Assert.Contains(spans, span => span.OperationName == "ledger.apply" && span.TraceId == traceId);
    }
}

using System.Text.Json.Nodes;
using Etcdserverpb;
using Google.Protobuf;
using Payments.Domain;
using Payments.Etcd;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Client.Records;
using Payments.Orchestrator.Sweeping;
using Payments.Orchestrator.Workflows;
using Payments.Testing;

namespace Payments.Orchestrator.IntegrationTests;

/// <summary>The sweeper after its takeover cycle has ended.</summary>
public sealed partial class PaymentSagaTests
{
    /// <summary>Found in review: a takeover cycle that could not run again a saga run from before it (the engine slow
    /// or away for that one call: the pass counts it failed and goes on) still ended, and with it the rule that looks
    /// for such runs: the run, waiting for a reviewer who had approved in the other region, was left to fail the payment
    /// at its deadline. Here the cycle is one that ended with that run still there (its state as the sweeper leaves it:
    /// served, with its cut-off after the run started); a later pass runs it again, and it honours the approval.</summary>
    [Fact]
    public async Task Sweeper_AfterItsTakeoverCycle_StillRunsAgainASagaRunFromBeforeTheTakeover()
    {
        var (payment, creditor, amount, takeoverBegan) = await AwaitingApprovalHereApprovedElsewhereAsync();

        var layout = new EtcdOptions { KeyPrefix = saga.Prefix };
        var sweeper = Sweeper();
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (!(await saga.Records.GetAsync(payment.PaymentId, CancellationToken.None))!.Value.Record.IsTerminal)
        {
            Assert.True(waited.Elapsed < SagaTimeout, "The run from before the takeover was left waiting for a reviewer who had decided, once the cycle had ended.");
            // Before every pass: the fixture's own sweeper may have written its state (from a read before this test's).
            await MarkTakeoverCycleEndedAsync(layout, takeoverBegan);
            if (await sweeper.SweepOnceAsync(CancellationToken.None) == SweepReport.Idle)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(250));
            }
        }

        Assert.Equal(PaymentStatus.Completed, (await saga.Records.GetAsync(payment.PaymentId, CancellationToken.None))!.Value.Record.Status);
        Assert.Equal(amount, await BalanceAsync(creditor));
    }

    /// <summary>A payment above the review threshold whose saga run here waits for a reviewer, while its record says
    /// what the other region did while it held it (shipped here): approved there, no longer awaiting review. Returns
    /// it, its creditor, its amount, and a time after the run started.</summary>
    private async Task<(PaymentInput Payment, AccountId Creditor, long Amount, DateTimeOffset AfterTheRunStarted)> AwaitingApprovalHereApprovedElsewhereAsync()
    {
        var amount = SagaFixture.ReviewThresholdMinor + 1;
        var (debtor, creditor) = await OpenAccountsAsync(fundsMinor: amount);
        var payment = Payment(debtor, creditor, amount);
        var longAgo = DateTimeOffset.UtcNow.AddMinutes(-1);
        await saga.Records.CreateAsync(PaymentRecord.Accepted(payment.Order, longAgo), CancellationToken.None);
        await saga.Workflows.ScheduleBoundedAsync(nameof(PaymentWorkflowV2), payment.PaymentId, payment);
        await PollAsync(async () => (await saga.Workflows.GetWorkflowStateAsync(payment.PaymentId))?.ReadCustomStatusAs<string>() == PaymentStep.AwaitingApproval);
        await PollAsync(async () => (await saga.Records.GetAsync(payment.PaymentId, CancellationToken.None))!.Value.Record.Status == PaymentStatus.AwaitingApproval);
        var afterTheRunStarted = DateTimeOffset.UtcNow;
        await saga.Records.ChangeAsync(payment.PaymentId, record => record with
        {
            Status = PaymentStatus.Pending, Review = new PaymentReview(PaymentReview.Approved, "reviewer-key", longAgo), UpdatedAt = longAgo,
        }, CancellationToken.None);
        return (payment, creditor, amount, afterTheRunStarted);
    }

    /// <summary>The sweeper's state as it leaves it after a takeover cycle for a (test) epoch began at <paramref name="since"/>
    /// — served, the flag cleared — keeping its cursors.</summary>
    private async Task MarkTakeoverCycleEndedAsync(EtcdOptions layout, DateTimeOffset since)
    {
        var key = EtcdBytes.Key(SweepRequests.CursorKey(layout));
        var stored = (await saga.Etcd.Kv.RangeAsync(new RangeRequest { Key = key })).Kvs.FirstOrDefault()?.Value;
        var state = stored is null || stored.IsEmpty ? new JsonObject() : JsonNode.Parse(stored.ToStringUtf8())!.AsObject();
        state["serving"] = null;
        state["since"] = since;
        state["served"] = NextTakeoverEpoch().ToString(System.Globalization.CultureInfo.InvariantCulture);
        await saga.Etcd.Kv.PutAsync(new PutRequest { Key = key, Value = ByteString.CopyFromUtf8(state.ToJsonString()) });
    }
}

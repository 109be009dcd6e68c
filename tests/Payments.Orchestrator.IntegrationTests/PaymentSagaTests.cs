using System.Diagnostics;
using Dapr.Workflow;
using Etcdserverpb;
using Payments.Domain;
using Payments.Etcd;
using Payments.Ledger.Contracts;
using Payments.Orchestrator.Activities;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Client.Records;
using Payments.Orchestrator.Workflows;
using Payments.Testing;

namespace Payments.Orchestrator.IntegrationTests;

[Collection(SagaCollection.Name)]
public sealed partial class PaymentSagaTests(SagaFixture saga)
{
    public static readonly TimeSpan SagaTimeout = TimeSpan.FromSeconds(90);
    private const long FundsMinor = 1_000_000;

    /// <summary>The saga new payments run, and the one payments started before an upgrade still replay against.</summary>
    [Theory]
    [InlineData(DaprPaymentWorkflows.CurrentWorkflow)]
    [InlineData(nameof(PaymentWorkflow))]
    public async Task ShouldSettlePayment_MovingTheMoneyExactlyOnce(string workflow)
    {
        var (debtor, creditor) = await OpenAccountsAsync();
        var payment = Payment(debtor, creditor, 1_250);
        var now = DateTimeOffset.UtcNow;
        await saga.Records.CreateAsync(PaymentRecord.Accepted(payment.Order, now), CancellationToken.None);

        await saga.Workflows.ScheduleBoundedAsync(workflow, payment.PaymentId, payment);
        var outcome = await WaitAsync(payment);

        Assert.Equal(PaymentOutcome.Completed(), outcome);
        Assert.Equal(FundsMinor - 1_250, await BalanceAsync(debtor));
        Assert.Equal(1_250, await BalanceAsync(creditor));
        Assert.Equal(PaymentStatus.Completed, (await saga.Records.GetAsync(payment.PaymentId, CancellationToken.None))!.Value.Record.Status);
        await AssertInTransitIsBalancedAsync();
        // The current saga holds and settles in one etcd transaction (its entries share a revision); the old one in two.
        var journal = await new Ledger.Core.JournalReader(saga.Ledger).ReadAllAsync(Ledger.Core.Invariants.LedgerInvariants.MaxJournalEntries, CancellationToken.None);
        TransferId[] moves = [PaymentTransfers.Hold(payment), PaymentTransfers.Credit(payment), PaymentTransfers.Post(payment)];
        var entries = journal.Where(entry => moves.Contains(entry.TransferId)).ToArray();
        Assert.Equal(3, entries.Length);
        Assert.Equal(workflow == nameof(PaymentWorkflow) ? 2 : 1, entries.Select(entry => entry.Sequence / JournalEntry.SequencePerRevision).Distinct().Count());
    }

    [Fact]
    public async Task SagasLastStep_RecordsTheOutcome_InThePaymentRecord()
    {
        var (debtor, creditor) = await OpenAccountsAsync(fundsMinor: 500);
        var payment = Payment(debtor, creditor, 501);
        var now = DateTimeOffset.UtcNow;
        await saga.Records.CreateAsync(PaymentRecord.Accepted(payment.Order, now), CancellationToken.None);

        await RunAsync(payment);

        var stored = (await saga.Records.GetAsync(payment.PaymentId, CancellationToken.None))!.Value.Record;
        Assert.Equal((PaymentStatus.Failed, LedgerError.InsufficientFunds), (stored.Status, stored.Reason));
    }

    [Fact]
    public async Task InsufficientFunds_FailsWithoutMovingMoney()
    {
        var (debtor, creditor) = await OpenAccountsAsync(fundsMinor: 500);

        var payment = Payment(debtor, creditor, 501) with { CreatedAt = DateTimeOffset.UtcNow }; // as the API creates it
        var outcome = await RunAsync(payment);

        Assert.Equal(PaymentOutcome.Failed(LedgerError.InsufficientFunds), outcome);
        Assert.Equal(500, await BalanceAsync(debtor));
        Assert.Equal(0, (await saga.Ledger.GetAccountAsync(debtor, CancellationToken.None))!.PendingDebitMinor);
        // Reported failed only once its hold is barred: the same hold arriving later — the lost region's, at fail-back
        // (ADR 0003), or an earlier run's still in flight — is refused, never placed under a payment that failed.
        await saga.Ledger.TransferAsync(new TransferRequest.Single(TransferId.Parse($"topup-{payment.PaymentId}"), AccountId.ExternalFunding(Currency.Usd), debtor, new Money(1, Currency.Usd)), CancellationToken.None);
        var amount = PaymentTransfers.Amount(payment);
        var lateHold = new TransferRequest.Pending(PaymentTransfers.Hold(payment), debtor, AccountId.InTransit(amount.Currency), amount, TimeSpan.FromMinutes(15), payment.PaymentId)
        {
            IssuedAt = PaymentTransfers.IssuedAt(payment),
        };
        var late = await saga.Ledger.TransferAsync(lateHold, CancellationToken.None);
        Assert.Equal(LedgerError.PendingTransferAlreadyVoided, Assert.IsType<TransferOutcome.Failed>(late).Error.Code);
    }

    [Fact]
    public async Task CreditorClosedBeforeSettlement_IsCompensated_AndTheDebtorKeepsItsFunds()
    {
        var (debtor, creditor) = await OpenAccountsAsync();
        var payment = Payment(debtor, creditor, 700);
        // Risk approves, so no validation step: the hold (the debtor's side) is placed, the settlement refuses the
        // closed creditor, and the hold must be voided.
        Assert.IsType<CloseAccountOutcome.Closed>(await saga.Ledger.CloseAccountAsync(creditor, CancellationToken.None));

        var outcome = await RunAsync(payment);

        Assert.Equal(PaymentOutcome.Compensated(LedgerError.AccountClosed), outcome);
        // Sent twice: in the linked batch with the settlement (refused whole, nothing applied), then alone, so that
        // the saga's steps leave what they always left: one hold, placed and voided.
        Assert.Equal(2, saga.Flaky.Attempts(PaymentTransfers.Hold(payment)));
        var journal = await new Ledger.Core.JournalReader(saga.Ledger).ReadAllAsync(Ledger.Core.Invariants.LedgerInvariants.MaxJournalEntries, CancellationToken.None);
        Assert.Single(journal, entry => entry.TransferId == PaymentTransfers.Hold(payment));
        Assert.Single(journal, entry => entry.TransferId == PaymentTransfers.Void(payment));
        Assert.DoesNotContain(journal, entry => entry.TransferId == PaymentTransfers.Credit(payment));
        var account = (await saga.Ledger.GetAccountAsync(debtor, CancellationToken.None))!;
        Assert.Equal((FundsMinor, 0L), (account.BalanceMinor, account.PendingDebitMinor));
        await AssertInTransitIsBalancedAsync();
    }

    [Fact]
    public async Task TransientLedgerFailure_IsRetriedByTheSaga_AndAppliedOnce()
    {
        var (debtor, creditor) = await OpenAccountsAsync();
        var payment = Payment(debtor, creditor, 300);
        saga.Flaky.FailNext(PaymentTransfers.Hold(payment), times: 2);

        var outcome = await RunAsync(payment);

        Assert.Equal(PaymentOutcome.Completed(), outcome);
        Assert.Equal(3, saga.Flaky.Attempts(PaymentTransfers.Hold(payment)));
        Assert.Equal(300, await BalanceAsync(creditor));
        var journal = await new Ledger.Core.JournalReader(saga.Ledger).ReadAllAsync(Ledger.Core.Invariants.LedgerInvariants.MaxJournalEntries, CancellationToken.None);
        Assert.Single(journal, entry => entry.TransferId == PaymentTransfers.Hold(payment));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task SettlementWithoutAnAnswer_IsWaitedOut_NeverCompensated_AndSettlesOnce(bool committedButNotReplicated)
    {
        var (debtor, creditor) = await OpenAccountsAsync();
        var payment = Payment(debtor, creditor, 400);
        if (committedButNotReplicated)
        {
            saga.Flaky.FailAfterApplying(PaymentTransfers.Credit(payment), times: 3); // the pivot committed, the answer says "not yet"
        }
        else
        {
            saga.Flaky.FailNext(PaymentTransfers.Credit(payment), times: 3); // the ledger unreachable at the pivot
        }

        var outcome = await RunAsync(payment);

        Assert.Equal(PaymentOutcome.Completed(), outcome);
        Assert.Equal(4, saga.Flaky.Attempts(PaymentTransfers.Credit(payment)));
        Assert.Equal(400, await BalanceAsync(creditor));
        var journal = await new Ledger.Core.JournalReader(saga.Ledger).ReadAllAsync(Ledger.Core.Invariants.LedgerInvariants.MaxJournalEntries, CancellationToken.None);
        Assert.Single(journal, entry => entry.TransferId == PaymentTransfers.Credit(payment));
        Assert.DoesNotContain(journal, entry => entry.TransferId == PaymentTransfers.Void(payment)); // never compensated
        await AssertInTransitIsBalancedAsync();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task PaymentAboveThreshold_WaitsForApproval_AndFollowsTheDecision(bool approve)
    {
        var (debtor, creditor) = await OpenAccountsAsync();
        var payment = Payment(debtor, creditor, SagaFixture.ReviewThresholdMinor + 1);
        await saga.Workflows.ScheduleBoundedAsync(nameof(PaymentWorkflowV2), payment.PaymentId, payment);

        await PollAsync(async () => (await saga.Workflows.GetWorkflowStateAsync(payment.PaymentId))?.ReadCustomStatusAs<string>() == PaymentStep.AwaitingApproval);
        Assert.Equal(FundsMinor, (await saga.Ledger.GetAccountAsync(debtor, CancellationToken.None))!.AvailableMinor);
        await saga.Workflows.RaiseEventAsync(payment.PaymentId, PaymentWorkflow.ApprovalEventName, new ApprovalDecision(approve, "reviewer"));
        var outcome = await WaitAsync(payment);

        Assert.Equal(approve ? PaymentOutcome.Completed() : PaymentOutcome.Failed(PaymentReasons.ReviewRejected), outcome);
        Assert.Equal(approve ? FundsMinor - payment.Order.AmountMinor : FundsMinor, await BalanceAsync(debtor));
    }

    /// <summary>Issue 14: the saga writes awaiting_approval into the record itself (the API no longer asks the
    /// workflow), and a payment once sent to review stays there when the risk step runs again and would approve.</summary>
    [Fact]
    public async Task TheSagaRecordsAwaitingApproval_AndAPaymentOnceSentToReview_StaysThere()
    {
        var (debtor, creditor) = await OpenAccountsAsync();
        var reviewed = Payment(debtor, creditor, SagaFixture.ReviewThresholdMinor + 1);
        var resent = Payment(debtor, creditor, 100); // the risk check approves this amount
        var now = DateTimeOffset.UtcNow;
        await saga.Records.CreateAsync(PaymentRecord.Accepted(reviewed.Order, now), CancellationToken.None);
        // As an earlier run of the risk step left it when its answer was lost.
        await saga.Records.CreateAsync(PaymentRecord.Accepted(resent.Order, now) with { Status = PaymentStatus.AwaitingApproval }, CancellationToken.None);

        foreach (var payment in new[] { reviewed, resent })
        {
            await saga.Workflows.ScheduleBoundedAsync(nameof(PaymentWorkflowV2), payment.PaymentId, payment);
            await PollAsync(async () => (await saga.Workflows.GetWorkflowStateAsync(payment.PaymentId))?.ReadCustomStatusAs<string>() == PaymentStep.AwaitingApproval);
            Assert.Equal(PaymentStatus.AwaitingApproval, (await saga.Records.GetAsync(payment.PaymentId, CancellationToken.None))!.Value.Record.Status);
            await saga.Workflows.RaiseEventAsync(payment.PaymentId, PaymentWorkflow.ApprovalEventName, new ApprovalDecision(true, "reviewer"));
            Assert.Equal(PaymentOutcome.Completed(), await WaitAsync(payment));
            Assert.Equal(PaymentStatus.Completed, (await saga.Records.GetAsync(payment.PaymentId, CancellationToken.None))!.Value.Record.Status);
        }
    }

    /// <summary>A payment sent to review is validated before it is recorded (and announced) as awaiting approval:
    /// one its debtor cannot fund fails at once, and its merchant only ever hears that it failed.</summary>
    [Fact]
    public async Task PaymentSentToReview_ThatItsDebtorCannotFund_FailsAtOnce_NeverAnnouncedAsAwaitingApproval()
    {
        var (debtor, creditor) = await OpenAccountsAsync(fundsMinor: SagaFixture.ReviewThresholdMinor);
        var payment = Payment(debtor, creditor, SagaFixture.ReviewThresholdMinor + 1);
        await saga.Records.CreateAsync(PaymentRecord.Accepted(payment.Order, DateTimeOffset.UtcNow), CancellationToken.None);

        var outcome = await RunAsync(payment);

        Assert.Equal(PaymentOutcome.Failed(LedgerError.InsufficientFunds), outcome);
        var root = PaymentEvents.MerchantRoot(saga.Records.EventsRoot, payment.Order.MerchantId);
        var events = await saga.Etcd.Kv.RangeAsync(new RangeRequest { Key = EtcdBytes.Key(root), RangeEnd = EtcdBytes.PrefixEnd(root) });
        var types = events.Kvs.Select(kv => PaymentEvents.Deserialize(kv.Value.Span))
            .Where(paymentEvent => paymentEvent.Data.PaymentId == payment.PaymentId).Select(paymentEvent => paymentEvent.Type);
        Assert.Equal([PaymentEvents.Failed], types);
    }

    [Fact]
    public async Task ManyConcurrentPayments_AllReachATerminalState_AndConserveMoney()
    {
        const int payments = 60;
        var accounts = new List<AccountId>();
        for (var index = 0; index < 6; index++)
        {
            var (debtor, _) = await OpenAccountsAsync(fundsMinor: 10_000);
            accounts.Add(debtor);
        }

        var random = new Random(42);
        var inputs = Enumerable.Range(0, payments).Select(_ =>
        {
            var debtor = accounts[random.Next(accounts.Count)];
            var creditor = accounts.Where(account => account != debtor).ElementAt(random.Next(accounts.Count - 1));
            return Payment(debtor, creditor, random.Next(1, 4_000));
        }).ToArray();

        var outcomes = await Task.WhenAll(inputs.Select(RunAsync));

        Assert.All(outcomes, outcome => Assert.Contains(outcome.Status, new[] { PaymentStatus.Completed, PaymentStatus.Failed }));
        Assert.Contains(outcomes, outcome => outcome.Status == PaymentStatus.Completed);
        var balances = await Task.WhenAll(accounts.Select(BalanceAsync));
        Assert.Equal(accounts.Count * 10_000L, balances.Sum());
        Assert.All(balances, balance => Assert.True(balance >= 0));
        await AssertInTransitIsBalancedAsync();
    }

    private async Task<PaymentOutcome> RunAsync(PaymentInput payment)
    {
        await saga.Workflows.ScheduleBoundedAsync(DaprPaymentWorkflows.CurrentWorkflow, payment.PaymentId, payment);
        return await WaitAsync(payment);
    }

    private async Task<PaymentOutcome> WaitAsync(PaymentInput payment)
    {
        using var timeout = new CancellationTokenSource(SagaTimeout);
        var state = await saga.Workflows.WaitForWorkflowCompletionAsync(payment.PaymentId, getInputsAndOutputs: true, timeout.Token);
        Assert.Equal(WorkflowRuntimeStatus.Completed, state.RuntimeStatus);
        return state.ReadOutputAs<PaymentOutcome>()!;
    }

    private async Task<(AccountId Debtor, AccountId Creditor)> OpenAccountsAsync(long fundsMinor = FundsMinor)
    {
        var debtor = AccountId.Parse($"d-{Guid.NewGuid():N}");
        var creditor = AccountId.Parse($"c-{Guid.NewGuid():N}");
        await saga.Ledger.OpenAccountAsync(debtor, Currency.Usd, 0, CancellationToken.None);
        await saga.Ledger.OpenAccountAsync(creditor, Currency.Usd, 0, CancellationToken.None);
        var funding = new TransferRequest.Single(TransferId.Parse($"fund-{debtor}"), AccountId.ExternalFunding(Currency.Usd), debtor, new Money(fundsMinor, Currency.Usd))
        {
            IssuedAt = DateTimeOffset.UtcNow,
        };
        Assert.IsType<TransferOutcome.Applied>(await saga.Ledger.TransferAsync(funding, CancellationToken.None));
        return (debtor, creditor);
    }

    private async Task<long> BalanceAsync(AccountId id) => (await saga.Ledger.GetAccountAsync(id, CancellationToken.None))!.BalanceMinor;

    /// <summary>Every settled payment put into in-transit what it took out: no payment is left half-done.</summary>
    private async Task AssertInTransitIsBalancedAsync()
    {
        var inTransit = (await saga.Ledger.GetAccountAsync(AccountId.InTransit(Currency.Usd), CancellationToken.None))!;
        Assert.Equal(0, inTransit.BalanceMinor);
        await LedgerAssert.InvariantsHoldAsync(saga.Ledger, CancellationToken.None);
    }

    private static PaymentInput Payment(AccountId debtor, AccountId creditor, long amountMinor) =>
        new(new PaymentOrder($"pay-{Guid.NewGuid():N}", "merchant-a", debtor.Value, creditor.Value, amountMinor, "USD", null),
            ApprovalTimeout: TimeSpan.FromMinutes(5));

    private static async Task PollAsync(Func<Task<bool>> condition)
    {
        var waited = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(waited.Elapsed < SagaTimeout, "Timed out waiting for the saga.");
            await Task.Delay(TimeSpan.FromMilliseconds(50));
        }
    }
}

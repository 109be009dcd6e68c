using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Orchestrator.Client.Models;

namespace Payments.Orchestrator.Activities;

/// <summary>Credits the creditor from in-transit and posts the debtor's hold, as one linked batch: one etcd
/// transaction, so the money is never credited without the hold being taken, or the other way round.</summary>
public sealed class SettlePaymentActivity(ILedger ledger) : PaymentActivity<StepResult>
{
    protected override Task<StepResult> ExecuteAsync(PaymentInput input) => SettleAsync(ledger, input);

    /// <summary>The settlement itself, shared with <see cref="MoveMoneyActivity"/>: the same transfer ids either way.</summary>
    internal static async Task<StepResult> SettleAsync(ILedger ledger, PaymentInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var outcome = await ledger.ApplyBatchAsync(Requests(input), CancellationToken.None);
        return outcome.Succeeded ? StepResult.Ok : StepResult.Refused(outcome.Error!.Code);
    }

    /// <summary>The settlement's linked transfers: credit the creditor from in-transit, post the debtor's hold.</summary>
    internal static TransferRequest[] Requests(PaymentInput input)
    {
        var amount = PaymentTransfers.Amount(input);
        var issuedAt = PaymentTransfers.IssuedAt(input);
        return
        [
            new TransferRequest.Single(
                PaymentTransfers.Credit(input), AccountId.InTransit(amount.Currency), AccountId.ParseLedger(input.Order.CreditorAccountId), amount, input.PaymentId)
            {
                IssuedAt = issuedAt,
            },
            new TransferRequest.PostPending(PaymentTransfers.Post(input), PaymentTransfers.Hold(input)) { IssuedAt = issuedAt },
        ];
    }
}

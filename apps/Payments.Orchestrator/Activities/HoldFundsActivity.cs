using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Orchestrator.Client.Models;

namespace Payments.Orchestrator.Activities;

/// <summary>Holds the amount on the debtor (a pending transfer to the currency's in-transit account). The hold
/// expires by itself after <see cref="HoldTimeout"/>, a last safety net if the saga could neither settle nor void it.</summary>
public sealed class HoldFundsActivity(ILedger ledger) : PaymentActivity<StepResult>
{
    // Long enough for settling with all its retries (about 2 min), short enough that a hold the saga could neither
    // settle nor void is released soon by the expiry sweep. (A hold arriving after its void found nothing is refused:
    // the void barred its id.)
    public static readonly TimeSpan HoldTimeout = TimeSpan.FromMinutes(15);

    protected override Task<StepResult> ExecuteAsync(PaymentInput input) => HoldAsync(ledger, input);

    /// <summary>The hold itself, shared with <see cref="MoveMoneyActivity"/>: the same transfer id either way.</summary>
    internal static async Task<StepResult> HoldAsync(ILedger ledger, PaymentInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        // LedgerUnavailableException propagates: the activity fails and the runtime retries it with the same ids.
        return await ledger.TransferAsync(Request(input), CancellationToken.None) switch
        {
            TransferOutcome.Failed failed => StepResult.Refused(failed.Error.Code),
            _ => StepResult.Ok,
        };
    }

    /// <summary>The hold's transfer: the same id and fields wherever it is sent from, so that every send is a replay of the first.</summary>
    internal static TransferRequest.Pending Request(PaymentInput input)
    {
        var amount = PaymentTransfers.Amount(input);
        return new TransferRequest.Pending(
            PaymentTransfers.Hold(input), AccountId.ParseLedger(input.Order.DebtorAccountId), AccountId.InTransit(amount.Currency), amount, HoldTimeout, input.PaymentId)
        {
            IssuedAt = PaymentTransfers.IssuedAt(input),
        };
    }
}

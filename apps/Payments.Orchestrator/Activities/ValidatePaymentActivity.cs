using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Orchestrator.Client.Models;

namespace Payments.Orchestrator.Activities;

/// <summary>Both accounts exist, are open and hold the payment's currency, and the debtor could cover the amount
/// now. The API checked the request's shape; this checks it against the ledger as it is when the saga starts. Reads
/// only. The funds check is advisory — the hold decides — and is here so that a payment its debtor cannot fund fails
/// at once instead of first waiting for a reviewer who could only approve it into a refused hold.</summary>
public sealed class ValidatePaymentActivity(ILedger ledger) : PaymentActivity<StepResult>
{
    protected override Task<StepResult> ExecuteAsync(PaymentInput input) => ValidateAsync(ledger, input);

    /// <summary>The checks themselves, shared with <see cref="AssessPaymentActivity"/>.</summary>
    internal static async Task<StepResult> ValidateAsync(ILedger ledger, PaymentInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Order.DebtorAccountId == input.Order.CreditorAccountId)
        {
            return StepResult.Refused(LedgerError.SameAccount);
        }

        foreach (var id in new[] { input.Order.DebtorAccountId, input.Order.CreditorAccountId })
        {
            var account = await ledger.GetAccountAsync(AccountId.ParseLedger(id), CancellationToken.None);
            if (account is null)
            {
                return StepResult.Refused(LedgerError.AccountNotFound);
            }

            if (account.Closed)
            {
                return StepResult.Refused(LedgerError.AccountClosed);
            }

            if (account.Currency.Code != input.Order.Currency)
            {
                return StepResult.Refused(LedgerError.CurrencyMismatch);
            }

            if (id == input.Order.DebtorAccountId && !account.CouldCover(input.Order.AmountMinor))
            {
                return StepResult.Refused(LedgerError.InsufficientFunds);
            }
        }

        return StepResult.Ok;
    }
}

using Payments.Api.Limits;
using Payments.Api.Problems;
using Payments.Domain;
using Payments.Ledger.Contracts;

namespace Payments.Api.Apis;

/// <summary>The operator's overdraft decision, for the admin surface to call (merchants cannot set an overdraft:
/// <c>POST /v1/accounts</c> refuses a non-zero one with 403 overdraft-set-by-operator).</summary>
public static class Overdrafts
{
    /// <summary>Sets <paramref name="accountId"/>'s overdraft limit within its currency's configured maximum, as one
    /// atomic ledger write; the same limit again is a success that changes nothing. Replies: 200 with the account (as
    /// <c>GET /v1/accounts/{id}</c> shows it); 400 validation-failed (negative); 404 account-not-found; 422
    /// overdraft-limit-exceeded (above <see cref="MoneyLimit.MaxOverdraftMinor"/>), overdraft-in-use (below what the
    /// account already uses) or account-closed. Nothing is written on any refusal. Ledger faults propagate as the
    /// API's other handlers let them (503 through the exception handler).</summary>
    public static async Task<Reply> SetAsync(
        ILedger ledger, MoneyLimits limits, AccountId accountId, long overdraftLimitMinor, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(ledger);
        ArgumentNullException.ThrowIfNull(limits);
        ArgumentNullException.ThrowIfNull(accountId);
        if (overdraftLimitMinor < 0)
        {
            return Reply.Invalid(new Dictionary<string, string> { ["overdraftLimitMinor"] = "overdraftLimitMinor must not be negative." });
        }

        if (accountId.IsSystem || await ledger.GetAccountAsync(accountId, cancellationToken) is not { } account)
        {
            return Reply.LedgerAccountNotFound(accountId.Value);
        }

        var max = limits.For(account.Currency).MaxOverdraftMinor;
        if (overdraftLimitMinor > max)
        {
            return Reply.Problem(StatusCodes.Status422UnprocessableEntity, ProblemTypes.OverdraftLimitExceeded,
                "The overdraft limit is above the maximum for its currency.",
                $"An overdraft limit in {account.Currency.Code} may be at most {max} minor units; {(overdraftLimitMinor == long.MaxValue ? $"{long.MaxValue} or more" : overdraftLimitMinor)} was asked.",
                new Dictionary<string, object?> { ["maxOverdraftMinor"] = max });
        }

        return await ledger.SetOverdraftLimitAsync(accountId, overdraftLimitMinor, cancellationToken) switch
        {
            SetOverdraftOutcome.Set set => Reply.Json(StatusCodes.Status200OK, AccountsApi.ToResponse(set.Account)),
            SetOverdraftOutcome.Failed { Error.Code: LedgerError.AccountNotFound } => Reply.LedgerAccountNotFound(accountId.Value),
            SetOverdraftOutcome.Failed { Error.Code: LedgerError.OverdraftInUse } failed => Reply.Problem(
                StatusCodes.Status422UnprocessableEntity, ProblemTypes.OverdraftInUse, "The account already uses more overdraft than that.", failed.Error.Detail),
            SetOverdraftOutcome.Failed failed => AccountsApi.LedgerProblem(failed.Error),
            _ => throw new InvalidOperationException("Unknown outcome."),
        };
    }
}

using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.ServiceDefaults.Security;

namespace Payments.Ledger.Security;

/// <summary>Least privilege in the ledger (docs/security.md): which caller may move money how. The API deposits —
/// external funding to a customer account, nothing else; the saga moves a payment through in-transit — a hold from a
/// customer account, the credit to a customer account, the hold's post or void. No caller names a system account in
/// any other place, so no compromised app can mint money from external funding or drain in-transit to itself.</summary>
internal static class LedgerCallerPolicy
{
    /// <summary>Why <paramref name="role"/> may not ask for <paramref name="request"/>, or null when it may.</summary>
    public static string? Refusal(string role, TransferRequest request) => (role, request) switch
    {
        (ServiceRoles.Api, TransferRequest.Single single) when IsDeposit(single) => null,
        (ServiceRoles.Api, _) =>
            "The API may only deposit: a single transfer from the external funding account of its currency to a customer account.",
        (ServiceRoles.Orchestrator, TransferRequest.Pending hold)
            when !hold.DebitAccountId.IsSystem && hold.CreditAccountId == AccountId.InTransit(hold.Amount.Currency) => null,
        (ServiceRoles.Orchestrator, TransferRequest.Single credit)
            when credit.DebitAccountId == AccountId.InTransit(credit.Amount.Currency) && !credit.CreditAccountId.IsSystem => null,
        (ServiceRoles.Orchestrator, TransferRequest.PostPending or TransferRequest.VoidPending) => null,
        (ServiceRoles.Orchestrator, _) =>
            "The saga moves money only through in-transit: a hold from a customer account to in-transit, a credit from in-transit to a customer account, and the hold's post or void.",
        _ => $"Callers in role '{role}' may not transfer.",
    };

    /// <summary>Accounts readable over the internal API: customer accounts only (system accounts are the ledger's own).</summary>
    public static string? ReadRefusal(AccountId account) =>
        account.IsSystem ? "System accounts are not readable over the internal API." : null;

    private static bool IsDeposit(TransferRequest.Single single) =>
        single.DebitAccountId == AccountId.ExternalFunding(single.Amount.Currency) && !single.CreditAccountId.IsSystem;
}

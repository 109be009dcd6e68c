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

    /// <summary><see cref="Refusal"/> for a transfer asked alone (<c>/transfers</c>): the saga's credit out of
    /// in-transit never comes alone (see <see cref="BatchRefusal"/>), so alone it is refused — it would let a
    /// compromised orchestrator pay any customer out of in-transit, which has no limit.</summary>
    public static string? SingleRefusal(string role, TransferRequest request) =>
        Refusal(role, request)
        ?? (role == ServiceRoles.Orchestrator && request is TransferRequest.Single credit && credit.DebitAccountId == AccountId.InTransit(credit.Amount.Currency)
            ? "A credit out of in-transit goes only in a batch with the post of its payment's hold."
            : null);

    /// <summary>A batch (all or nothing): every transfer passes <see cref="Refusal"/>, and the saga's credit out of
    /// in-transit (<c>{payment}:credit</c>) comes with the post of its own payment's hold (<c>{payment}:hold</c>) —
    /// as <c>SettlePaymentActivity</c> always sends them — so it is applied only if that hold exists and is posted by
    /// it. <see cref="Funded"/> then makes the ledger compare its amount with the hold's, in the same transaction.</summary>
    public static string? BatchRefusal(string role, IReadOnlyList<TransferRequest> batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.Select(request => Refusal(role, request)).FirstOrDefault(refusal => refusal is not null) is { } refusal)
        {
            return refusal;
        }

        if (role != ServiceRoles.Orchestrator)
        {
            return null;
        }

        // A hold's void goes alone (/transfers): only there does the ledger bar a hold that has not arrived yet
        // (HoldBars), and the saga takes "no such hold" from a void as "nothing to undo" — in a batch, a hold still on
        // its way would land after the payment was compensated (a review; the saga never batches a void).
        if (batch.Any(request => request is TransferRequest.VoidPending))
        {
            return "A hold's void goes alone, not in a batch: only alone does the ledger bar a hold that has not arrived yet.";
        }

        var postedHolds = batch.OfType<TransferRequest.PostPending>().Select(post => post.PendingId.Value).ToHashSet(StringComparer.Ordinal);
        foreach (var credit in batch.OfType<TransferRequest.Single>().Where(single => single.DebitAccountId == AccountId.InTransit(single.Amount.Currency)))
        {
            var id = credit.Id.Value;
            if (HoldOf(id) is not { } hold || !postedHolds.Contains(hold))
            {
                return $"The credit {id} out of in-transit needs the post of its payment's hold in the same batch.";
            }
        }

        return null;
    }

    /// <summary>The batch as the ledger applies it, once <see cref="BatchRefusal"/> passed it: the saga's credit out of
    /// in-transit names its payment's hold (<see cref="TransferRequest.Single.FundedByHold"/>), so the ledger applies
    /// it only for that hold's amount, currency and account — a compromised orchestrator cannot pay out more than its
    /// hold brought in (code <c>unfunded-payout</c> otherwise).</summary>
    public static IReadOnlyList<TransferRequest> Funded(string role, IReadOnlyList<TransferRequest> batch) =>
        role != ServiceRoles.Orchestrator
            ? batch
            : batch.Select(request => request is TransferRequest.Single single && single.DebitAccountId == AccountId.InTransit(single.Amount.Currency)
                ? single with { FundedByHold = TransferId.Parse(HoldOf(single.Id.Value)
                    ?? throw new InvalidOperationException($"{single.Id} is not a credit step; BatchRefusal passes only those.")) }
                : request).ToArray();

    /// <summary>The saga's step names in its transfer ids (<c>PaymentTransfers</c>: <c>{payment}:{step}</c>).</summary>
    private const string CreditStep = ":credit";
    private const string HoldStep = ":hold";

    /// <summary>The id of the hold that funds the saga's credit <paramref name="creditId"/>, or null when the id is
    /// not a credit step.</summary>
    private static string? HoldOf(string creditId) =>
        creditId.EndsWith(CreditStep, StringComparison.Ordinal) ? creditId[..^CreditStep.Length] + HoldStep : null;

    /// <summary>Accounts readable over the internal API: customer accounts only (system accounts are the ledger's own).</summary>
    public static string? ReadRefusal(AccountId account) =>
        account.IsSystem ? "System accounts are not readable over the internal API." : null;

    /// <summary>Why <paramref name="role"/> may not read <paramref name="entry"/>, or null when it may: the API reads
    /// deposits only (to find an Idempotency-Key's deposit), the saga any transfer (its holds).</summary>
    public static string? TransferReadRefusal(string role, JournalEntry entry) => role switch
    {
        ServiceRoles.Orchestrator => null,
        ServiceRoles.Api when entry.Kind == TransferKind.Single && entry.DebitAccountId == AccountId.ExternalFunding(entry.Amount.Currency)
            && !entry.CreditAccountId.IsSystem => null,
        ServiceRoles.Api => ApiReadsDepositsOnly,
        _ => $"Callers in role '{role}' may not read transfers.",
    };

    /// <summary>The refusal of a transfer read to the API, which is answered as a missing transfer (404): a 403 for an
    /// existing one told a compromised API which of the saga's transfer ids exist (a review).</summary>
    public const string ApiReadsDepositsOnly = "The API reads deposits only.";

    /// <summary>A deposit above the currency's <c>MaxDepositMinor</c>, which the API checks first, is no request the
    /// API makes: refused as the caller's overreach. Only that bound keeps the external funding account of a currency
    /// far from the ledger's (docs/api.md, "Why these limits"): without it here, a compromised API exhausted it in a
    /// handful of deposits, and deposits in that currency stopped for every merchant.</summary>
    public static string? DepositLimitRefusal(string role, TransferRequest request, MoneyLimits limits) =>
        role == ServiceRoles.Api && request is TransferRequest.Single deposit && IsDeposit(deposit)
            && deposit.Amount.AmountMinor > limits.For(deposit.Amount.Currency).MaxDepositMinor
            ? $"A deposit of {deposit.Amount.AmountMinor} is above the most one deposit in {deposit.Amount.Currency} may be ({limits.For(deposit.Amount.Currency).MaxDepositMinor})."
            : null;

    private static bool IsDeposit(TransferRequest.Single single) =>
        single.DebitAccountId == AccountId.ExternalFunding(single.Amount.Currency) && !single.CreditAccountId.IsSystem;
}

using Payments.Api.Contracts;
using Payments.Api.Idempotency;
using Payments.Api.Limits;
using Payments.Api.Problems;
using Payments.Api.Security;
using Payments.Domain;
using Payments.Etcd;
using Payments.Ledger.Contracts;
using Payments.Merchants;
using Payments.Api.OpenApi;

namespace Payments.Api.Apis;

public static class AccountsApi
{
    public static void MapAccountsApiV1(this IEndpointRouteBuilder app)
    {
        var accounts = app.MapGroup("/v1/accounts").WithTags("Accounts");
        accounts.MapPost("/", OpenAsync).WithName("OpenAccount").RequireScope(ApiScopes.AccountsWrite)
            .JsonBody<OpenAccountRequest>().Produces<AccountResponse>(StatusCodes.Status201Created).LocationOfCreated("account").Problems(400, 409, 413, 415)
            .WithDescription("Scope accounts:write. Opens an account in one currency; overdraftLimitMinor must be 0 or absent (403 overdraft-set-by-operator: only the operator sets an overdraft).");
        accounts.MapGet("/{accountId}", GetAsync).WithName("GetAccount").RequireScope(ApiScopes.AccountsRead)
            .Produces<AccountResponse>().Problems(404)
            .WithDescription("Scope accounts:read. The merchant's own account (404 for any other).");
        accounts.MapPost("/{accountId}/deposits", Deposits.DepositAsync).WithName("Deposit").RequireScope(ApiScopes.AccountsWrite)
            .JsonBody<DepositRequest>().IdempotencyKeyHeader("it names its deposit until the end of the UTC day after its first use (24 to 48 h)").Produces<DepositResponse>(StatusCodes.Status201Created).Problems(400, 404, 409, 413, 415, 422)
            .WithDescription("Scope accounts:write. Needs an Idempotency-Key (it names its deposit until the end of the UTC day after its first use: 24 to 48 h). Amount at most the currency's MaxDepositMinor (422 amount-limit-exceeded).");
    }

    private static async Task<IResult> OpenAsync(HttpContext context, MerchantStore store, ILedger ledger, ApiOptions options, AccountClaimTurns turns)
    {
        var merchant = ApiKeyMiddleware.MerchantOf(context);
        var (bytes, problem) = await RequestBody.ReadAsync(context);
        if (problem is not null)
        {
            return problem.ToResult();
        }

        var (request, parseProblem) = RequestBody.Parse<OpenAccountRequest>(bytes!);
        if (parseProblem is not null)
        {
            return parseProblem.ToResult();
        }

        var (accountId, currency, invalid) = ValidateOpen(request!);
        if (invalid is not null)
        {
            return invalid.ToResult();
        }

        // Another merchant's use of the same id neither blocks this one nor shows: the account then lives under this
        // merchant's namespace (AccountId's remarks). Only the merchant's own account with other fields is a 409.
        var plainId = accountId!.Value;
        // Claimed and counted toward the merchant's bound in one transaction, before the ledger opens it: the claim is
        // what stays (as does the account), and a retry after a ledger fault finds it the merchant's, counted once.
        // A merchant id from before ids were checked cannot name a namespace: first come, first served, as before.
        var claim = await turns.ClaimAsync(store, plainId, merchant, Namespaced(merchant, accountId), options.MaxAccountsPerMerchant, context.RequestAborted);
        if (claim.LimitReached)
        {
            return AccountLimitReached(options).ToResult();
        }

        if (claim.LedgerId is not { } claimed)
        {
            return AccountExists(plainId).ToResult();
        }

        var ledgerId = AccountId.ParseLedger(claimed);
        var outcome = await ledger.OpenAccountAsync(ledgerId, currency!, overdraftLimitMinor: 0, context.RequestAborted);

        var account = outcome is OpenAccountOutcome.Opened opened
            ? opened.Account
            // The same open again after the operator gave the account an overdraft: a merchant's open never names one,
            // so only the currency tells whether this is the account the request asks for.
            : await ledger.GetAccountAsync(ledgerId, context.RequestAborted) is { } existing && existing.Currency.Equals(currency) ? existing : null;
        if (account is null)
        {
            return AccountExists(plainId).ToResult();
        }

        await store.RecordAccountCurrencyAsync(ledgerId.Value, account.Currency.Code, context.RequestAborted);
        context.Response.Headers.Location = "/v1/accounts/" + Uri.EscapeDataString(plainId); // RFC 9110 15.3.2: else the target URI
        return Reply.Json(StatusCodes.Status201Created, OpenedResponse(account, context)).ToResult();
    }

    /// <summary>The open's fields checked: the account id and currency, or the problem (400 naming the fields; 403 for
    /// an overdraft, which only the operator sets).</summary>
    private static (AccountId? AccountId, Currency? Currency, Reply? Problem) ValidateOpen(OpenAccountRequest request)
    {
        var errors = new Dictionary<string, string>();
        AccountId.TryParse(request.AccountId, out var accountId, out var idProblem);
        if (idProblem is not null)
        {
            errors["accountId"] = idProblem;
        }

        var currency = Validate.Currency(request.Currency, errors);
        if (request.OverdraftLimitMinor is < 0)
        {
            errors["overdraftLimitMinor"] = "overdraftLimitMinor must not be negative.";
        }

        if (errors.Count > 0)
        {
            return (null, null, Reply.Invalid(errors));
        }

        // Credit is the operator's decision (Overdrafts.SetAsync, from the admin surface), never the merchant's:
        // refused before anything is written. 0 or absent still opens the account without one.
        return request.OverdraftLimitMinor is > 0 ? (null, null, OverdraftByOperatorOnly()) : (accountId, currency, null);
    }

    private static async Task<IResult> GetAsync(string accountId, HttpContext context, MerchantStore store, ILedger ledger)
    {
        var account = await OwnedAccountAsync(accountId, context, store, ledger);
        return account is null ? Reply.AccountNotFound(accountId).ToResult() : Reply.Json(StatusCodes.Status200OK, ToResponse(account)).ToResult();
    }

    /// <summary>The account if this merchant owns it; null (so: 404) for an account that is missing or someone else's.</summary>
    internal static async Task<Account?> OwnedAccountAsync(string accountId, HttpContext context, MerchantStore store, ILedger ledger)
    {
        var merchant = ApiKeyMiddleware.MerchantOf(context);
        if (!AccountId.TryParse(accountId, out var id, out _))
        {
            return null;
        }

        var facts = await store.AccountFactsAsync(LedgerCandidates(merchant, [accountId]), context.RequestAborted);
        return Owned(merchant, [accountId], facts)[0] is { } owned ? await ledger.GetAccountAsync(owned, context.RequestAborted) : null;
    }

    /// <summary>The ledger ids each of a merchant's account ids may live at, two per account in order: the id itself
    /// (the first merchant to open it holds it) and the merchant's namespaced form (AccountId's remarks). An invalid id
    /// asks for two ids no one holds.</summary>
    internal static string[] LedgerCandidates(string merchant, IReadOnlyList<string> accountIds) =>
        accountIds.SelectMany(accountId => AccountId.TryParse(accountId, out var id, out _)
            ? new[] { id.Value, Namespaced(merchant, id) ?? NoAccount }
            : [NoAccount, NoAccount]).ToArray();

    /// <summary>The merchant's namespaced ledger id for <paramref name="id"/>; null for a merchant id from before
    /// merchant ids were checked (keys issued then keep working), which cannot name a namespace.</summary>
    private static string? Namespaced(string merchant, AccountId id) =>
        MerchantRecord.IsValidId(merchant) ? AccountId.OfMerchant(merchant, id).Value : null;

    /// <summary>A ledger id no one can hold (the reserved prefix, and not a system account): read, never found.</summary>
    private const string NoAccount = "@invalid";

    /// <summary>Of the facts read for <see cref="LedgerCandidates"/>: per account, the ledger id this merchant holds, or
    /// null when it holds none by that id.</summary>
    internal static AccountId?[] Owned(string merchant, IReadOnlyList<string> accountIds, IReadOnlyList<(string? Owner, string? Currency)> facts)
    {
        var candidates = LedgerCandidates(merchant, accountIds); // once, not once per account
        var owned = new AccountId?[accountIds.Count];
        for (var index = 0; index < owned.Length; index++)
        {
            var held = facts[2 * index].Owner == merchant ? 2 * index : facts[(2 * index) + 1].Owner == merchant ? (2 * index) + 1 : -1;
            owned[index] = held < 0 ? null : AccountId.ParseLedger(candidates[held]);
        }

        return owned;
    }

    /// <summary>Ledger id and currency of each account the merchant owns, null where it owns none by that id: from
    /// the API's own records (<paramref name="facts"/>: owner and recorded currency of each of
    /// <see cref="LedgerCandidates"/>, read by the caller with the rest of what it needs); the ledger is asked only
    /// about an account opened before currencies were recorded (and its currency recorded then, so it is asked
    /// once).</summary>
    internal static async Task<IReadOnlyList<(AccountId LedgerId, Currency Currency)?>> OwnedCurrenciesAsync(
        IReadOnlyList<string> accountIds, IReadOnlyList<(string? Owner, string? Currency)> facts, HttpContext context, MerchantStore store, ILedger ledger)
    {
        var merchant = ApiKeyMiddleware.MerchantOf(context);
        var owned = Owned(merchant, accountIds, facts);
        var found = new (AccountId LedgerId, Currency Currency)?[accountIds.Count];
        for (var index = 0; index < accountIds.Count; index++)
        {
            if (owned[index] is not { } id)
            {
                continue;
            }

            var code = facts[2 * index].Owner == merchant ? facts[2 * index].Currency : facts[(2 * index) + 1].Currency;
            if (code is not null)
            {
                found[index] = (id, Currency.FromCode(code));
            }
            else if (await ledger.GetAccountAsync(id, context.RequestAborted) is { } account)
            {
                found[index] = (id, account.Currency);
                await store.RecordAccountCurrencyAsync(id.Value, account.Currency.Code, context.RequestAborted);
            }
        }

        return found;
    }

    internal static Reply CurrencyMismatch(string accountId, Currency accountCurrency, Currency requested) =>
        Reply.Problem(StatusCodes.Status422UnprocessableEntity, ProblemTypes.CurrencyMismatch, "The currency does not match the account.",
            $"Account '{accountId}' holds {accountCurrency}, not {requested}.");

    internal static Reply LedgerProblem(LedgerError error) => error.Code switch
    {
        LedgerError.CurrencyMismatch => Reply.Problem(StatusCodes.Status422UnprocessableEntity, ProblemTypes.CurrencyMismatch, "The currency does not match the account.", error.Detail),
        LedgerError.AccountClosed => Reply.Problem(StatusCodes.Status422UnprocessableEntity, ProblemTypes.AccountClosed, "The account is closed.", error.Detail),
        LedgerError.BalanceLimitExceeded => Reply.Problem(StatusCodes.Status422UnprocessableEntity, ProblemTypes.BalanceLimitExceeded,
            "A ledger limit for this account is reached.", error.Detail),
        LedgerError.BalanceOverflow => Reply.Problem(StatusCodes.Status422UnprocessableEntity, ProblemTypes.BalanceLimitExceeded,
            "A ledger limit for this account is reached.", "The account's balance would pass the largest amount the ledger holds; nothing was changed."),
        LedgerError.OverdraftInUse => Reply.Problem(StatusCodes.Status422UnprocessableEntity, ProblemTypes.OverdraftInUse,
            "The account already uses more overdraft than that.", error.Detail),
        // A deposit's id comes from merchant and key, and the ledger knows it for 7 days: the key reused after its own
        // 24 h with another body. It was answered with the ledger's own code (a type no document lists) and its detail.
        LedgerError.TransferIdReuse => Reply.Problem(StatusCodes.Status422UnprocessableEntity, ProblemTypes.IdempotencyKeyReuse,
            "This Idempotency-Key was used with a different request.",
            "A recent deposit with this Idempotency-Key (since the start of yesterday, UTC) had another account, amount or currency; use a new key. Nothing was deposited."),
        // Never a type of the ledger's own: those are not the API's contract. Nothing was changed, and it is not the caller's doing.
        _ => Reply.Problem(StatusCodes.Status500InternalServerError, ProblemTypes.InternalError, "Something went wrong on our side.",
            $"The ledger refused the operation unexpectedly (code {error.Code}); nothing was changed."),
    };

    /// <summary>422 amount-limit-exceeded when <paramref name="amountMinor"/> is above its currency's maximum, else null.</summary>
    internal static Reply? AboveLimit(string what, long amountMinor, long maxMinor, Currency currency) =>
        amountMinor <= maxMinor
            ? null
            : Reply.Problem(StatusCodes.Status422UnprocessableEntity, ProblemTypes.AmountLimitExceeded, "The amount is above the maximum for its currency.",
                $"A {what} in {currency.Code} may be at most {maxMinor} minor units; {amountMinor} was asked.",
                new Dictionary<string, object?> { ["maxAmountMinor"] = maxMinor });

    private static Reply OverdraftByOperatorOnly() =>
        Reply.Problem(StatusCodes.Status403Forbidden, ProblemTypes.OverdraftSetByOperator, "An overdraft is set by the operator.",
            "Open the account with overdraftLimitMinor 0 or absent; the operator grants an overdraft limit.");

    /// <summary>409 <c>account-limit-reached</c>: the merchant has claimed <see cref="ApiOptions.MaxAccountsPerMerchant"/>
    /// accounts and this id is not one of them (an open of its own account again is still answered).</summary>
    private static Reply AccountLimitReached(ApiOptions options) => Reply.Problem(StatusCodes.Status409Conflict, ProblemTypes.AccountLimitReached,
        "The merchant has opened the most accounts allowed.",
        $"At most {options.MaxAccountsPerMerchant} accounts per merchant (the operator's setting payments.publicApi.maxAccountsPerMerchant).");

    private static Reply AccountExists(string accountId) =>
        Reply.Problem(StatusCodes.Status409Conflict, ProblemTypes.AccountExists, "You have this account already, with other fields.",
            $"Account '{accountId}' already exists with other fields.");

    /// <summary>An open is idempotent, so the account may have been opened before and hold money: its balances are what
    /// accounts:read guards, so a key that may only open accounts is told it exists, not what it holds.</summary>
    private static AccountResponse OpenedResponse(Account account, HttpContext context) =>
        ApiKeyMiddleware.PrincipalOf(context).Has(ApiScopes.AccountsRead)
            ? ToResponse(account)
            : ToResponse(account) with { BalanceMinor = null, PendingDebitMinor = null, AvailableMinor = null, OverdraftLimitMinor = null, Version = null };

    internal static AccountResponse ToResponse(Account account) => new(
        account.Id.PublicId, account.Currency.Code, account.BalanceMinor, account.PendingDebitMinor, account.AvailableMinor, account.OverdraftLimitMinor, account.Version);
}

using Payments.Api.Contracts;
using Payments.Api.Idempotency;
using Payments.Api.Limits;
using Payments.Api.Problems;
using Payments.Api.Security;
using Payments.Domain;
using Payments.Etcd;
using Payments.Ledger.Contracts;
using Payments.Merchants;

namespace Payments.Api.Apis;

/// <summary><c>POST /v1/accounts/{id}/deposits</c>: money from outside into a merchant's account, under an
/// Idempotency-Key, within the currency's limits and the merchant's daily volume.</summary>
internal static class Deposits
{
    internal static async Task<IResult> DepositAsync(
        string accountId, HttpContext context, MerchantStore store, ILedger ledger, IdempotentExecutor idempotency, TimeProvider time, MoneyLimits limits,
        DepositVolume volume)
    {
        var merchant = ApiKeyMiddleware.MerchantOf(context);
        var (key, bytes, problem) = await IdempotentExecutor.ReadRequestAsync(context);
        if (problem is not null)
        {
            return problem.ToResult();
        }

        // Checked before the key is claimed (as for payments): a body that cannot be valid is not stored as the key's
        // answer, and may be fixed and sent again with the same key. An account id no account can have gets the answer
        // it gets later (404), with nothing stored either. Unless this very request was answered before, under rules
        // that took it (a lower maximum or a currency dropped since): its retry gets that answer, not a refusal that
        // says nothing was deposited while the money is in the account (a review; payments did this already).
        var (amount, currency, invalid) = ParseDeposit(bytes!);
        if ((invalid ?? (AccountId.TryParse(accountId, out _, out _) ? null : Reply.AccountNotFound(accountId))) is { } refused)
        {
            return (await idempotency.AnsweredOrAsync(merchant, key!, "POST", $"/v1/accounts/{accountId}/deposits", bytes!, refused, context.RequestAborted)).ToResult();
        }

        var reply = await idempotency.RunAsync(merchant, key!, "POST", $"/v1/accounts/{accountId}/deposits", bytes!,
            claim => DepositOnceAsync(new DepositAttempt(accountId, merchant, key!, new Money(amount!.Value, currency!), claim), context, store, ledger, time, limits, volume),
            context.RequestAborted, () => ApiKeyMiddleware.WithdrawnAsync(context, store));
        return reply.ToResult();
    }

    /// <summary>What one attempt of a deposit deposits, under which key and claim.</summary>
    private sealed record DepositAttempt(string AccountId, string Merchant, IdempotencyKey Key, Money Money, IdempotencyClaim Claim);

    private static async Task<Reply> DepositOnceAsync(
        DepositAttempt attempt, HttpContext context, MerchantStore store, ILedger ledger, TimeProvider time, MoneyLimits limits, DepositVolume volume)
    {
        var (accountId, merchant, key, money, claim) = attempt;

        // Decided by the ledger's deposits, which are shipped to the other region (idempotency records are not), so a
        // retry there after a failover replays this deposit instead of funding the account twice (docs/api.md). The
        // day is the key's first claim's, which its retries in this region keep: a retry just after midnight whose
        // first attempt's deposit was still in flight named the same deposit, not a second one.
        var (depositId, earlier) = await DepositIds.OfAsync(
            ledger, merchant, key, claim.IsUnclaimed ? time.GetUtcNow() : claim.CreatedAt, time.GetUtcNow(), context.RequestAborted);
        var applied = earlier is not null;

        // A deposit already applied is replayed whatever the limits say now: a retry past midnight was checked
        // against the new day's volume, a 422 "nothing deposited" was stored under the key for money that was in
        // the account, and a merchant believing it deposited again.
        if (!applied && AccountsApi.AboveLimit("deposit", money.AmountMinor, limits.For(money.Currency).MaxDepositMinor, money.Currency) is { } tooMuch)
        {
            return tooMuch;
        }

        var account = await AccountsApi.OwnedAccountAsync(accountId, context, store, ledger);
        if (ReusedKey(earlier, money, account) is { } reused)
        {
            return reused;
        }

        if (account is null)
        {
            return Reply.AccountNotFound(accountId);
        }

        if (!account.Currency.Equals(money.Currency))
        {
            return AccountsApi.CurrencyMismatch(accountId, account.Currency, money.Currency);
        }

        if (!applied && await OverDailyVolumeAsync(volume, limits, merchant, depositId, money, context.RequestAborted) is { } overVolume)
        {
            return overVolume;
        }

        var outcome = await ledger.TransferAsync(
            // Issued now on every attempt: a retry names the deposit only within the key's day (DepositIds), and
            // the ledger keeps it for days longer.
            new TransferRequest.Single(TransferId.Parse(depositId), AccountId.ExternalFunding(money.Currency), account.Id, money, "deposit")
            {
                IssuedAt = time.GetUtcNow(),
            },
            context.RequestAborted);
        if (outcome is TransferOutcome.Failed refused)
        {
            if (!applied)
            {
                // Only what this attempt counted: an applied deposit's count (maybe another day's) is its own.
                await TakeBackAsync(volume, merchant, depositId, money, context);
            }

            return AccountsApi.LedgerProblem(refused.Error);
        }

        return outcome is TransferOutcome.Applied
            ? Reply.Json(StatusCodes.Status201Created, new DepositResponse(depositId, accountId, money.AmountMinor, money.Currency.Code))
            : throw new InvalidOperationException("Unknown outcome.");
    }

    /// <summary>The key's deposit, when it is not this request's (another amount, currency or account: the key reused
    /// after its idempotency record ended, 24 h), answered as the ledger would answer it — before this account's own
    /// checks, whose 404 or currency mismatch was stored as the key's answer.</summary>
    private static Reply? ReusedKey(JournalEntry? earlier, Money money, Account? account) =>
        earlier is not null && (!earlier.Amount.Equals(money) || account is null || !earlier.CreditAccountId.Equals(account.Id))
            ? AccountsApi.LedgerProblem(new LedgerError(LedgerError.TransferIdReuse, "another deposit under this key"))
            : null;

    /// <summary>A deposit the ledger refused (nothing moved) no longer counts toward the day's volume. Any other failure
    /// (no answer) keeps it counted: the deposit may have been applied.</summary>
    private static async Task TakeBackAsync(DepositVolume volume, string merchant, string depositId, Money money, HttpContext context)
    {
        try
        {
            await volume.ReleaseAsync(merchant, depositId, money, CancellationToken.None);
        }
        catch (Exception exception) when (exception is EtcdContentionException or Grpc.Core.RpcException or OperationCanceledException)
        {
            // The refusal is still the answer; the day's count stays a little high (it errs on the safe side).
            context.RequestServices.GetRequiredService<ILogger<DepositVolume>>()
                .LogWarning("Deposit {DepositId}: refused by the ledger, but not taken back from the day's volume ({Error})", depositId, exception.Message);
        }
    }

    /// <summary>A deposit's amount and currency, or the problem with its body (malformed, or a field invalid).</summary>
    private static (long? Amount, Currency? Currency, Reply? Problem) ParseDeposit(byte[] bytes)
    {
        var (request, parseProblem) = RequestBody.Parse<DepositRequest>(bytes);
        if (parseProblem is not null)
        {
            return (null, null, parseProblem);
        }

        var errors = new Dictionary<string, string>();
        var amount = Validate.Amount(request!.AmountMinor, errors);
        var currency = Validate.Currency(request.Currency, errors);
        return errors.Count > 0 ? (null, null, Reply.Invalid(errors)) : (amount, currency, null);
    }

    /// <summary>Counts the deposit toward the merchant's volume of the day; a 422 problem when it would pass the
    /// currency's daily maximum (<see cref="DepositVolume"/>).</summary>
    private static async Task<Reply?> OverDailyVolumeAsync(
        DepositVolume volume, MoneyLimits limits, string merchant, string depositId, Money money, CancellationToken cancellationToken)
    {
        var maxPerDay = limits.For(money.Currency).MaxDepositVolumePerDayMinor;
        return await volume.TryReserveAsync(merchant, depositId, money, maxPerDay, cancellationToken)
            ? null
            : Reply.Problem(StatusCodes.Status422UnprocessableEntity, ProblemTypes.DepositVolumeExceeded,
                "The merchant's deposits for today would pass their daily maximum.",
                $"Deposits in {money.Currency.Code} are limited to {maxPerDay} minor units per merchant per UTC day; this one would pass it.",
                new Dictionary<string, object?> { ["maxDepositVolumePerDayMinor"] = maxPerDay });
    }
}

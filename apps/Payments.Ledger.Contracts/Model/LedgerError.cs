namespace Payments.Ledger.Contracts;

/// <summary>An expected failure of a ledger operation: a value, never an exception. <see cref="Code"/> is stable
/// (callers branch on it and the API maps it to a problem+json type); <see cref="Detail"/> is for people.</summary>
public sealed record LedgerError(string Code, string Detail)
{
    public const string InsufficientFunds = "insufficient-funds";
    public const string CurrencyMismatch = "currency-mismatch";
    public const string AccountNotFound = "account-not-found";
    public const string AccountClosed = "account-closed";
    public const string AccountExists = "account-exists";
    public const string AccountNotEmpty = "account-not-empty";
    public const string SameAccount = "same-account";
    public const string InvalidAmount = "invalid-amount";
    public const string InvalidTimeout = "invalid-timeout";
    public const string TransferIdReuse = "transfer-id-reuse";
    /// <summary>A payout that names its funding hold (<see cref="TransferRequest.Single.FundedByHold"/>) does not match
    /// it: no such hold, another amount, currency or account, or a batch that does not post the hold. (A voided or
    /// expired hold gets the codes its post would: <see cref="PendingTransferAlreadyVoided"/>, <see cref="PendingTransferExpired"/>.)</summary>
    public const string UnfundedPayout = "unfunded-payout";
    public const string PendingTransferNotFound = "pending-transfer-not-found";
    public const string PendingTransferAlreadyPosted = "pending-transfer-already-posted";
    public const string PendingTransferAlreadyVoided = "pending-transfer-already-voided";
    public const string PendingTransferExpired = "pending-transfer-expired";
    public const string BalanceOverflow = "balance-overflow";

    /// <summary>The transfer would take a system account shard beyond the ledger's bound (<c>LedgerLimits</c>), which
    /// keeps every system account's total within 64 bits. Nothing was applied.</summary>
    public const string BalanceLimitExceeded = "balance-limit-exceeded";

    /// <summary>A new overdraft limit below what the account already uses: lowering it would leave the account
    /// overdrawn beyond its limit. Nothing was changed.</summary>
    public const string OverdraftInUse = "overdraft-in-use";

    /// <summary>A limit above the currency's maximum that the caller named (<c>maxOverdraftFor</c>), judged on the
    /// record the write compares: the ledger's route answers it 403, as the caller's overreach.</summary>
    public const string OverdraftAboveMaximum = "overdraft-above-maximum";
    public const string BatchEmpty = "batch-empty";
    public const string BatchTooLarge = "batch-too-large";
    public const string BatchDuplicateId = "batch-duplicate-transfer-id";
    public const string LinkedTransferFailed = "linked-transfer-failed";
    public const string TransferTooOld = "transfer-too-old";
    public const string IssuedInFuture = "issued-in-future";

    public override string ToString() => $"{Code}: {Detail}";
}

using Payments.Domain;

namespace Payments.Ledger.Contracts;

/// <summary>An account as the ledger holds it. Balances follow the credit-normal convention of a platform's
/// customer liabilities: a credit raises <see cref="BalanceMinor"/>, a debit lowers it, and the sum over every
/// account of a currency (system accounts included) is always zero.</summary>
/// <param name="Version">How many times the account's record has been written (etcd's per-key version; for system
/// accounts, the sum over their shards): it grows with each change of the account, and tells nothing of any other. (It
/// was the record's mod revision, the whole cluster's write count: an account holder polling it saw every tenant's
/// write rate.)</param>
public sealed record Account(
    AccountId Id,
    Currency Currency,
    long OverdraftLimitMinor,
    bool Closed,
    long BalanceMinor,
    long PendingDebitMinor,
    long PendingCreditMinor,
    long Version)
{
    /// <summary>What the holder can still spend: posted balance less pending debits (incoming holds do not count).</summary>
    public long AvailableMinor => BalanceMinor - PendingDebitMinor;

    /// <summary>Whether a debit of <paramref name="amountMinor"/> would keep this account within its overdraft limit
    /// as it is now. Advisory only (a read, already old when it returns): the ledger's hold, one atomic transaction,
    /// decides.</summary>
    public bool CouldCover(long amountMinor) => AvailableMinor - amountMinor >= -OverdraftLimitMinor;

    public bool IsSystem => Id.IsSystem;
}

/// <summary>The outcome of opening an account.</summary>
public abstract record OpenAccountOutcome
{
    private OpenAccountOutcome()
    {
    }

    /// <param name="Created">False when the same account was already open with the same fields (idempotent retry).</param>
    public sealed record Opened(Account Account, bool Created) : OpenAccountOutcome;

    public sealed record Failed(LedgerError Error) : OpenAccountOutcome;
}

/// <summary>The outcome of setting an account's overdraft limit.</summary>
public abstract record SetOverdraftOutcome
{
    private SetOverdraftOutcome()
    {
    }

    /// <param name="Changed">False when the account already had this limit (an idempotent repeat: nothing written).</param>
    public sealed record Set(Account Account, bool Changed) : SetOverdraftOutcome;

    /// <param name="Error">account-not-found, account-closed, invalid-amount (negative) or overdraft-in-use.</param>
    public sealed record Failed(LedgerError Error) : SetOverdraftOutcome;
}

/// <summary>The outcome of closing an account.</summary>
public abstract record CloseAccountOutcome
{
    private CloseAccountOutcome()
    {
    }

    public sealed record Closed(Account Account) : CloseAccountOutcome;

    public sealed record Failed(LedgerError Error) : CloseAccountOutcome;
}

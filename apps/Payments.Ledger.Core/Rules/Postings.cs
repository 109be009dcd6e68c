using Payments.Ledger.Contracts;

namespace Payments.Ledger.Core.Rules;

/// <summary>How much one posting changes an account: posted balance, pending debits (holds on it), pending credits
/// (holds announced to it). Added with overflow checks: an overflow is refused, never wrapped.</summary>
public readonly record struct Balances(long BalanceMinor, long PendingDebitMinor, long PendingCreditMinor)
{
    public static Balances Zero => default;

    /// <exception cref="OverflowException">A sum does not fit in 64 bits.</exception>
    public Balances Plus(Balances delta) => new(
        checked(BalanceMinor + delta.BalanceMinor),
        checked(PendingDebitMinor + delta.PendingDebitMinor),
        checked(PendingCreditMinor + delta.PendingCreditMinor));
}

/// <summary>The posting arithmetic of the ledger, written once: what each kind of transfer does to its debit and its
/// credit account. The evaluator (new transfers), the journal applier (the standby's copy) and the journal replay
/// (the completeness check) all apply these, so the three can never disagree on what a transfer means.</summary>
public static class Postings
{
    /// <summary>Money moves now: the debtor's balance goes down, the creditor's up.</summary>
    public static (Balances Debit, Balances Credit) Single(long amountMinor) =>
        (new(-amountMinor, 0, 0), new(amountMinor, 0, 0));

    /// <summary>Phase one: the amount is held on the debtor (pending debit) and announced to the creditor (pending credit).</summary>
    public static (Balances Debit, Balances Credit) Hold(long amountMinor) =>
        (new(0, amountMinor, 0), new(0, 0, amountMinor));

    /// <summary>Phase two, post: the hold turns into a move of the whole held amount.</summary>
    public static (Balances Debit, Balances Credit) Post(long amountMinor) =>
        (new(-amountMinor, -amountMinor, 0), new(amountMinor, 0, -amountMinor));

    /// <summary>Phase two, void or expiry: the hold is released and nothing moves.</summary>
    public static (Balances Debit, Balances Credit) Release(long amountMinor) =>
        (new(0, -amountMinor, 0), new(0, 0, -amountMinor));

    public static (Balances Debit, Balances Credit) Of(TransferKind kind, long amountMinor) => kind switch
    {
        TransferKind.Single => Single(amountMinor),
        TransferKind.Pending => Hold(amountMinor),
        TransferKind.PostPending => Post(amountMinor),
        TransferKind.VoidPending or TransferKind.ExpirePending => Release(amountMinor),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown transfer kind."),
    };
}

using Payments.Domain;

namespace Payments.Ledger.Contracts;

/// <summary>What a caller asks the ledger to do. Every request carries its own <see cref="TransferId"/>: the same id
/// with the same fields is answered with the original outcome and never applied twice.</summary>
public abstract record TransferRequest(TransferId Id)
{
    /// <summary>When the caller first issued this transfer — the same instant on every retry of the same id (the saga
    /// uses its payment's creation time). The ledger remembers transfer ids only for its replay window (ADR 0004): it
    /// refuses a transfer issued before that window (<c>transfer-too-old</c>), so a retry can never re-apply a transfer
    /// whose record was archived. Null only for in-process callers that issue and apply at once (the hold-expiry
    /// sweep, tests); the ledger service requires it.</summary>
    public DateTimeOffset? IssuedAt { get; init; }

    /// <summary>Moves money now: debit one account, credit the other.</summary>
    public sealed record Single(TransferId Id, AccountId DebitAccountId, AccountId CreditAccountId, Money Amount, string? Reference = null)
        : TransferRequest(Id)
    {
        /// <summary>The pending transfer this one pays out: the ledger then applies it only if that hold moved this
        /// same amount, in this currency, into the account this one debits, and the same batch posts it — so a payout
        /// out of in-transit never exceeds what its own hold brought in, and is paid once. The ledger service sets
        /// it for the saga's credit out of in-transit; it is not part of the wire format.</summary>
        public TransferId? FundedByHold { get; init; }
    }

    /// <summary>Phase one of a two-phase transfer: holds the amount on the debtor (pending debit) and announces it to
    /// the creditor (pending credit). Expires after <paramref name="Timeout"/> unless posted or voided.</summary>
    public sealed record Pending(
        TransferId Id, AccountId DebitAccountId, AccountId CreditAccountId, Money Amount, TimeSpan? Timeout, string? Reference = null)
        : TransferRequest(Id);

    /// <summary>Phase two: moves the whole held amount.</summary>
    public sealed record PostPending(TransferId Id, TransferId PendingId) : TransferRequest(Id);

    /// <summary>Phase two: releases the hold; no money moves.</summary>
    public sealed record VoidPending(TransferId Id, TransferId PendingId) : TransferRequest(Id);
}

public enum TransferKind
{
    Single,
    Pending,
    PostPending,
    VoidPending,
    /// <summary>A pending transfer voided by the expiry sweep once its timeout passed.</summary>
    ExpirePending,
}

/// <summary>The outcome of one transfer.</summary>
public abstract record TransferOutcome(TransferId Id)
{
    /// <param name="Replayed">True when the transfer was already in the ledger when this call read it, so this is its
    /// original entry. That includes an earlier attempt of this same call whose response was lost: either way, the
    /// transfer is applied exactly once.</param>
    public sealed record Applied(TransferId Id, JournalEntry Entry, bool Replayed) : TransferOutcome(Id);

    public sealed record Failed(TransferId Id, LedgerError Error) : TransferOutcome(Id);

    public bool IsApplied => this is Applied;
}

/// <summary>The outcome of a linked batch: either every transfer applied, or none did.</summary>
/// <param name="BatchError">Set when the batch itself was refused (empty, too large, repeated ids).</param>
public sealed record BatchOutcome(IReadOnlyList<TransferOutcome> Transfers, LedgerError? BatchError = null)
{
    public bool Succeeded => BatchError is null && Transfers.All(transfer => transfer.IsApplied);

    /// <summary>Why the batch failed: the batch-level error, else the first transfer's own failure (the others are
    /// <c>linked-transfer-failed</c>).</summary>
    public LedgerError? Error => BatchError ?? Transfers.OfType<TransferOutcome.Failed>()
        .Select(failed => failed.Error)
        .FirstOrDefault(error => error.Code != LedgerError.LinkedTransferFailed);
}

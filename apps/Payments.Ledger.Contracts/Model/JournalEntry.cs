using Payments.Domain;

namespace Payments.Ledger.Contracts;

/// <summary>One posting as the ledger applied it: immutable once written, and complete enough to replay the
/// balances without any other record (post, void and expiry entries repeat the pending transfer's accounts and amount).</summary>
/// <param name="Sequence">Strictly increasing across the whole journal: the etcd revision of the transaction that
/// applied the entry times <see cref="SequencePerRevision"/>, plus the entry's index within that transaction.</param>
/// <param name="FundedBy">A payout's funding hold (<see cref="TransferRequest.Single.FundedByHold"/>): the payout used
/// that hold's shard of the system account, and a replay must use it too. Null for any other entry, and for payouts
/// applied before 2026-12-07 (sharded by their own id).</param>
public sealed record JournalEntry(
    long Sequence,
    TransferId TransferId,
    TransferKind Kind,
    AccountId DebitAccountId,
    AccountId CreditAccountId,
    Money Amount,
    TransferId? PendingId,
    DateTimeOffset? TimeoutAt,
    string? Reference,
    DateTimeOffset AppliedAt,
    TransferId? FundedBy = null)
{
    /// <summary>Room for the entries of one transaction: more than etcd's 128 operations per transaction allow.</summary>
    public const long SequencePerRevision = 256;
}

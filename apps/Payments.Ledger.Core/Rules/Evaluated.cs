using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core.Storage;

namespace Payments.Ledger.Core.Rules;

/// <summary>The pending transfer's hold, voided by the expiry sweep. Internal: only the sweep may expire holds.</summary>
internal sealed record ExpirePendingRequest(TransferId Id, TransferId PendingId) : TransferRequest(Id);

/// <summary>What evaluation decided for one transfer.</summary>
internal abstract record Evaluated
{
    private Evaluated()
    {
    }

    /// <summary>Will be written by this transaction at <paramref name="Record"/>.BatchIndex.</summary>
    public sealed record New(TransferRecord Record) : Evaluated;

    /// <summary>Applied before with the same fields; <paramref name="ModRevision"/> is when.</summary>
    public sealed record Replay(TransferRecord Record, long ModRevision) : Evaluated;

    public sealed record Rejected(LedgerError Error) : Evaluated;

    /// <summary>A key it needs has not been read yet.</summary>
    public sealed record NeedsKeys : Evaluated;
}

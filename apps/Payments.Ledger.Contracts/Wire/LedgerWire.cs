using Payments.Domain;

namespace Payments.Ledger.Contracts;

// The ledger service's JSON bodies: plain fields, so any language (and Dapr's invocation) can carry them.

/// <param name="IssuedAtUnixMs">Required: when the caller first issued this transfer (see <c>TransferRequest.IssuedAt</c>).</param>
public sealed record TransferWire(
    string Kind, string Id, string? DebitAccountId, string? CreditAccountId, long? AmountMinor, string? Currency, string? PendingId, long? TimeoutMs,
    string? Reference, long? IssuedAtUnixMs = null);

public sealed record JournalEntryWire(
    long Sequence, string TransferId, string Kind, string DebitAccountId, string CreditAccountId, long AmountMinor, string Currency,
    string? PendingId, DateTimeOffset? TimeoutAt, string? Reference, DateTimeOffset AppliedAt);

public sealed record OutcomeWire(string Id, bool Applied, bool Replayed, JournalEntryWire? Entry, string? ErrorCode, string? ErrorDetail);

public sealed record BatchWire(IReadOnlyList<TransferWire> Transfers);

public sealed record BatchOutcomeWire(IReadOnlyList<OutcomeWire> Transfers, string? BatchErrorCode, string? BatchErrorDetail);

public sealed record AccountWire(
    string Id, string Currency, long OverdraftLimitMinor, bool Closed, long BalanceMinor, long PendingDebitMinor, long PendingCreditMinor, long Version);

public sealed record OpenAccountWire(string Id, string Currency, long OverdraftLimitMinor);

public sealed record OpenAccountOutcomeWire(AccountWire? Account, bool Created, string? ErrorCode, string? ErrorDetail);

/// <summary>Nullable so that a body without the limit is refused, not read as 0.</summary>
public sealed record SetOverdraftWire(long? OverdraftLimitMinor);

public sealed record SetOverdraftOutcomeWire(AccountWire? Account, bool Changed, string? ErrorCode, string? ErrorDetail);

/// <summary>Conversions between the ledger's types and the wire records, both directions.</summary>
public static class LedgerWire
{
    /// <exception cref="ArgumentException">The request names no <see cref="TransferRequest.IssuedAt"/>: the ledger service
    /// would refuse it, and a caller that does not fix the instant per id could re-apply an archived transfer.</exception>
    public static TransferWire ToWire(TransferRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var issuedAt = request.IssuedAt?.ToUnixTimeMilliseconds()
            ?? throw new ArgumentException($"Transfer {request.Id} has no IssuedAt; every transfer sent to the ledger service names when it was first issued.", nameof(request));
        return request switch
        {
            TransferRequest.Single single => new("single", single.Id.Value, single.DebitAccountId.Value, single.CreditAccountId.Value,
                single.Amount.AmountMinor, single.Amount.Currency.Code, null, null, single.Reference, issuedAt),
            TransferRequest.Pending pending => new("pending", pending.Id.Value, pending.DebitAccountId.Value, pending.CreditAccountId.Value,
                pending.Amount.AmountMinor, pending.Amount.Currency.Code, null, (long?)pending.Timeout?.TotalMilliseconds, pending.Reference, issuedAt),
            TransferRequest.PostPending post => new("post", post.Id.Value, null, null, null, null, post.PendingId.Value, null, null, issuedAt),
            TransferRequest.VoidPending cancel => new("void", cancel.Id.Value, null, null, null, null, cancel.PendingId.Value, null, null, issuedAt),
            _ => throw new ArgumentOutOfRangeException(nameof(request), request.GetType().Name, "Not a public transfer request."),
        };
    }

    /// <summary>The last millisecond of the year 9999, the latest <see cref="DateTimeOffset"/>.</summary>
    private const long MaxUnixMs = 253_402_300_799_999;

    /// <summary>A hold's timeout at most: one year, far past any approval deadline, and far inside TimeSpan's range.</summary>
    private const long MaxTimeoutMs = 366L * 24 * 60 * 60 * 1000;

    /// <summary>Longest reference a transfer carries over the wire (the platform's are payment and deposit ids, well
    /// under it).</summary>
    public const int MaxReferenceLength = 256;

    /// <summary>Null, with a reason, for a malformed wire transfer (the service answers 400).</summary>
    public static TransferRequest? FromWire(TransferWire wire, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(wire);
        problem = null;
        try
        {
            var id = TransferId.Parse(wire.Id);
            var issuedAt = wire.IssuedAtUnixMs is { } ms
                ? ms is >= 0 and <= MaxUnixMs
                    ? DateTimeOffset.FromUnixTimeMilliseconds(ms)
                    : throw new ArgumentException("issuedAtUnixMs must be a Unix time in milliseconds, from 0 to the year 9999.")
                : throw new ArgumentException("issuedAtUnixMs is required: the ledger remembers transfer ids only for its replay window, so every transfer names when it was first issued.");
            // A reference names what the transfer is for (a payment's or a deposit's id): bounded, as every stored
            // field is. Unbounded, one caller's megabyte references (kept for the replay window, and shipped) filled
            // etcd's quota in a few thousand requests and stopped every write.
            if (wire.Reference is { Length: > MaxReferenceLength })
            {
                throw new ArgumentException($"reference must be at most {MaxReferenceLength} characters.");
            }

            // Only what .NET cannot represent; a timeout of 0 or less is the ledger's own invalid-timeout outcome (one far
            // below 0 is read as -1 ms: long.MinValue answered .NET's own "TimeSpan overflowed" to the caller, a probe).
            if (wire.TimeoutMs is > MaxTimeoutMs)
            {
                throw new ArgumentException($"timeoutMs must be at most {MaxTimeoutMs}.");
            }

            TransferRequest request = wire.Kind switch
            {
                "single" => new TransferRequest.Single(id, Account(wire.DebitAccountId), Account(wire.CreditAccountId), Amount(wire), wire.Reference),
                "pending" => new TransferRequest.Pending(id, Account(wire.DebitAccountId), Account(wire.CreditAccountId), Amount(wire),
                    wire.TimeoutMs is { } timeoutMs ? TimeSpan.FromMilliseconds(Math.Max(timeoutMs, -1)) : null, wire.Reference),
                "post" => new TransferRequest.PostPending(id, TransferId.Parse(wire.PendingId ?? string.Empty)),
                "void" => new TransferRequest.VoidPending(id, TransferId.Parse(wire.PendingId ?? string.Empty)),
                _ => throw new ArgumentException($"Unknown transfer kind '{wire.Kind}'."),
            };
            return request with { IssuedAt = issuedAt };
        }
        catch (ArgumentException exception)
        {
            problem = ProblemText.Reason(exception);
            return null;
        }
    }

    public static OutcomeWire ToWire(TransferOutcome outcome) => outcome switch
    {
        TransferOutcome.Applied applied => new(applied.Id.Value, true, applied.Replayed, ToWire(applied.Entry), null, null),
        TransferOutcome.Failed failed => new(failed.Id.Value, false, false, null, failed.Error.Code, failed.Error.Detail),
        _ => throw new ArgumentOutOfRangeException(nameof(outcome)),
    };

    public static TransferOutcome FromWire(OutcomeWire wire)
    {
        ArgumentNullException.ThrowIfNull(wire);
        var id = TransferId.Parse(wire.Id);
        return wire.Applied
            ? new TransferOutcome.Applied(id, FromWire(wire.Entry ?? throw new InvalidDataException("An applied outcome without its entry.")), wire.Replayed)
            : new TransferOutcome.Failed(id, new LedgerError(wire.ErrorCode ?? "unknown", wire.ErrorDetail ?? string.Empty));
    }

    public static BatchOutcomeWire ToWire(BatchOutcome outcome) =>
        new(outcome.Transfers.Select(ToWire).ToArray(), outcome.BatchError?.Code, outcome.BatchError?.Detail);

    public static BatchOutcome FromWire(BatchOutcomeWire wire) =>
        new(wire.Transfers.Select(FromWire).ToArray(), wire.BatchErrorCode is null ? null : new LedgerError(wire.BatchErrorCode, wire.BatchErrorDetail ?? string.Empty));

    public static AccountWire ToWire(Account account) => new(
        account.Id.Value, account.Currency.Code, account.OverdraftLimitMinor, account.Closed, account.BalanceMinor,
        account.PendingDebitMinor, account.PendingCreditMinor, account.Version);

    public static Account FromWire(AccountWire wire) => new(
        AccountId.ParseAny(wire.Id),
        Currency.FromCode(wire.Currency), wire.OverdraftLimitMinor, wire.Closed, wire.BalanceMinor, wire.PendingDebitMinor, wire.PendingCreditMinor, wire.Version);

    public static OpenAccountOutcomeWire ToWire(OpenAccountOutcome outcome) => outcome switch
    {
        OpenAccountOutcome.Opened opened => new(ToWire(opened.Account), opened.Created, null, null),
        OpenAccountOutcome.Failed failed => new(null, false, failed.Error.Code, failed.Error.Detail),
        _ => throw new ArgumentOutOfRangeException(nameof(outcome)),
    };

    public static OpenAccountOutcome FromWire(OpenAccountOutcomeWire wire) =>
        wire.Account is { } account
            ? new OpenAccountOutcome.Opened(FromWire(account), wire.Created)
            : new OpenAccountOutcome.Failed(new LedgerError(wire.ErrorCode ?? "unknown", wire.ErrorDetail ?? string.Empty));

    public static SetOverdraftOutcomeWire ToWire(SetOverdraftOutcome outcome) => outcome switch
    {
        SetOverdraftOutcome.Set set => new(ToWire(set.Account), set.Changed, null, null),
        SetOverdraftOutcome.Failed failed => new(null, false, failed.Error.Code, failed.Error.Detail),
        _ => throw new ArgumentOutOfRangeException(nameof(outcome)),
    };

    public static SetOverdraftOutcome FromWire(SetOverdraftOutcomeWire wire) =>
        wire.Account is { } account
            ? new SetOverdraftOutcome.Set(FromWire(account), wire.Changed)
            : new SetOverdraftOutcome.Failed(new LedgerError(wire.ErrorCode ?? "unknown", wire.ErrorDetail ?? string.Empty));

    public static JournalEntryWire ToWire(JournalEntry entry) => new(
        entry.Sequence, entry.TransferId.Value, entry.Kind.ToString(), entry.DebitAccountId.Value, entry.CreditAccountId.Value,
        entry.Amount.AmountMinor, entry.Amount.Currency.Code, entry.PendingId?.Value, entry.TimeoutAt, entry.Reference, entry.AppliedAt);

    public static JournalEntry FromWire(JournalEntryWire wire) => new(
        wire.Sequence, TransferId.Parse(wire.TransferId), Enum.Parse<TransferKind>(wire.Kind),
        AccountId.ParseAny(wire.DebitAccountId), AccountId.ParseAny(wire.CreditAccountId),
        new Money(wire.AmountMinor, Currency.FromCode(wire.Currency)), wire.PendingId is null ? null : TransferId.Parse(wire.PendingId),
        wire.TimeoutAt, wire.Reference, wire.AppliedAt);

    private static AccountId Account(string? id) => AccountId.ParseAny(id ?? string.Empty);

    private static Money Amount(TransferWire wire) =>
        new(wire.AmountMinor ?? throw new ArgumentException("amountMinor is required."), Currency.FromCode(wire.Currency ?? string.Empty));
}

using System.Text.Json;
using System.Text.Json.Serialization;
using Google.Protobuf;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core.Rules;

namespace Payments.Ledger.Core.Storage;

/// <summary>An account's (or a system account shard's) record in etcd.</summary>
/// <param name="Unlimited">System accounts may go negative without bound: external funding is the world's money.</param>
internal sealed record AccountRecord(
    string Id,
    string Currency,
    long OverdraftLimitMinor,
    bool Unlimited,
    bool Closed,
    long BalanceMinor,
    long PendingDebitMinor,
    long PendingCreditMinor)
{
    [JsonIgnore] // derived: stored, it repeated the three balances in every account write
    public Balances Balances => new(BalanceMinor, PendingDebitMinor, PendingCreditMinor);

    /// <summary>The record after a posting's effect (<see cref="Postings"/>).</summary>
    /// <exception cref="OverflowException">A balance would not fit in 64 bits.</exception>
    public AccountRecord Plus(Balances delta)
    {
        var after = Balances.Plus(delta);
        return this with { BalanceMinor = after.BalanceMinor, PendingDebitMinor = after.PendingDebitMinor, PendingCreditMinor = after.PendingCreditMinor };
    }

    /// <summary>Whether the holder could not cover its pending debits within its overdraft limit.</summary>
    [JsonIgnore] // derived
    public bool IsOverdrawn => !Unlimited && checked(BalanceMinor - PendingDebitMinor) < -OverdraftLimitMinor;
}

/// <summary>An applied transfer: the journal entry. Written once (create-only), never changed.</summary>
/// <param name="FundedBy">A payout's funding hold, whose system account shard it used (absent: its own id's).</param>
internal sealed record TransferRecord(
    string Id,
    TransferKind Kind,
    string DebitAccountId,
    string CreditAccountId,
    long AmountMinor,
    string Currency,
    string? PendingId,
    long? TimeoutAtUnixMs,
    string? Reference,
    DateTimeOffset AppliedAt,
    int BatchIndex,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? FundedBy = null);

internal enum HoldStatus
{
    Pending,
    Posted,
    Voided,
    Expired,
}

/// <summary>The mutable state of a pending transfer.</summary>
internal sealed record HoldRecord(string PendingId, HoldStatus Status, long? TimeoutAtUnixMs, string? ResolvedBy)
{
    /// <summary>The hold as a post, void or expiry (<paramref name="resolution"/>, applied as <paramref name="resolvedBy"/>) leaves it.</summary>
    public HoldRecord Resolved(TransferKind resolution, string resolvedBy) => this with
    {
        Status = resolution switch
        {
            TransferKind.PostPending => HoldStatus.Posted,
            TransferKind.VoidPending => HoldStatus.Voided,
            TransferKind.ExpirePending => HoldStatus.Expired,
            _ => throw new ArgumentOutOfRangeException(nameof(resolution), resolution, "Not a resolution of a hold."),
        },
        ResolvedBy = resolvedBy,
    };
}

/// <summary>What an account is apart from its balances — currency, overdraft limit, closed — beside its record, in
/// the family the active region ships (<c>settings/</c>): the journal holds transfers only, so without it the standby
/// never learnt an overdraft limit, a closing, or an account opened and not yet used.</summary>
internal sealed record AccountSettingsRecord(string Id, string Currency, long OverdraftLimitMinor, bool Closed)
{
    public static AccountSettingsRecord Of(AccountRecord account) => new(account.Id, account.Currency, account.OverdraftLimitMinor, account.Closed);
}

/// <summary>One age-index entry: the transfers one etcd transaction applied.</summary>
internal sealed record AgeIndexRecord(IReadOnlyList<string> TransferIds);

/// <summary>What an account's archived entries add up to (the opening balance of its retained journal).</summary>
internal sealed record ArchivedSumsRecord(string AccountId, long BalanceMinor, long PendingDebitMinor, long PendingCreditMinor, long Entries)
{
    [JsonIgnore] // derived: stored, it repeated the three sums
    public Balances Balances => new(BalanceMinor, PendingDebitMinor, PendingCreditMinor);

    public ArchivedSumsRecord Plus(Balances delta)
    {
        var after = Balances.Plus(delta);
        return this with { BalanceMinor = after.BalanceMinor, PendingDebitMinor = after.PendingDebitMinor, PendingCreditMinor = after.PendingCreditMinor, Entries = Entries + 1 };
    }
}

/// <summary>The newest applied time the archiver has removed from etcd.</summary>
internal sealed record ArchiveHorizonRecord(DateTimeOffset ArchivedBefore);

// Nulls are left out (a missing property reads as null): a transfer without a hold, timeout or reference is ~60 bytes
// shorter, and every byte is written to each member's log and database and sent to every watcher. Records written
// before, with the nulls and the derived account fields, still read: unknown properties are skipped.
[JsonSourceGenerationOptions(UseStringEnumConverter = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(AccountRecord))]
[JsonSerializable(typeof(TransferRecord))]
[JsonSerializable(typeof(HoldRecord))]
[JsonSerializable(typeof(AgeIndexRecord))]
[JsonSerializable(typeof(AccountSettingsRecord))]
[JsonSerializable(typeof(ArchivedSumsRecord))]
[JsonSerializable(typeof(ArchiveHorizonRecord))]
internal sealed partial class LedgerJson : JsonSerializerContext
{
    public static ByteString Encode(object record) => record switch
    {
        AccountRecord account => ByteString.CopyFrom(JsonSerializer.SerializeToUtf8Bytes(account, Default.AccountRecord)),
        TransferRecord transfer => ByteString.CopyFrom(JsonSerializer.SerializeToUtf8Bytes(transfer, Default.TransferRecord)),
        HoldRecord hold => ByteString.CopyFrom(JsonSerializer.SerializeToUtf8Bytes(hold, Default.HoldRecord)),
        AgeIndexRecord age => ByteString.CopyFrom(JsonSerializer.SerializeToUtf8Bytes(age, Default.AgeIndexRecord)),
        AccountSettingsRecord settings => ByteString.CopyFrom(JsonSerializer.SerializeToUtf8Bytes(settings, Default.AccountSettingsRecord)),
        ArchivedSumsRecord sums => ByteString.CopyFrom(JsonSerializer.SerializeToUtf8Bytes(sums, Default.ArchivedSumsRecord)),
        ArchiveHorizonRecord horizon => ByteString.CopyFrom(JsonSerializer.SerializeToUtf8Bytes(horizon, Default.ArchiveHorizonRecord)),
        string empty when empty.Length == 0 => ByteString.Empty,
        _ => throw new ArgumentException($"Not a ledger record: {record.GetType().Name}", nameof(record)),
    };

    public static AccountRecord DecodeAccount(ByteString value) =>
        JsonSerializer.Deserialize(value.Span, Default.AccountRecord) ?? throw new InvalidDataException("Empty account record.");

    public static TransferRecord DecodeTransfer(ByteString value) =>
        JsonSerializer.Deserialize(value.Span, Default.TransferRecord) ?? throw new InvalidDataException("Empty transfer record.");

    public static HoldRecord DecodeHold(ByteString value) =>
        JsonSerializer.Deserialize(value.Span, Default.HoldRecord) ?? throw new InvalidDataException("Empty hold record.");

    public static AccountSettingsRecord DecodeSettings(ByteString value) =>
        JsonSerializer.Deserialize(value.Span, Default.AccountSettingsRecord) ?? throw new InvalidDataException("Empty account settings record.");

    public static AgeIndexRecord DecodeAge(ByteString value) =>
        JsonSerializer.Deserialize(value.Span, Default.AgeIndexRecord) ?? throw new InvalidDataException("Empty age index record.");

    public static ArchivedSumsRecord DecodeArchived(ByteString value) =>
        JsonSerializer.Deserialize(value.Span, Default.ArchivedSumsRecord) ?? throw new InvalidDataException("Empty archived sums record.");

    public static ArchiveHorizonRecord DecodeHorizon(ByteString value) =>
        JsonSerializer.Deserialize(value.Span, Default.ArchiveHorizonRecord) ?? throw new InvalidDataException("Empty archive horizon record.");
}

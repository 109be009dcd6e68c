using System.Diagnostics.CodeAnalysis;

namespace Payments.Domain;

/// <summary>A ledger account's id. Customer ids are 1–64 key-safe characters starting with a letter or digit;
/// system accounts (external funding, in-transit) carry the reserved '@' prefix that no caller can spell.</summary>
public sealed record AccountId
{
    public const int MaxLength = 64;
    private const string SystemPrefix = "@";

    private AccountId(string value) => Value = value;

    public string Value { get; }

    public bool IsSystem => Value.StartsWith(SystemPrefix, StringComparison.Ordinal);

    public static bool TryParse(string? value, [NotNullWhen(true)] out AccountId? id, out string? problem)
    {
        problem = Identifier.Problem(value, MaxLength, "An account id");
        id = problem is null ? new AccountId(value!) : null;
        return id is not null;
    }

    /// <exception cref="ArgumentException">The id is not valid; see <see cref="TryParse"/>.</exception>
    public static AccountId Parse(string value) =>
        TryParse(value, out var id, out var problem) ? id : throw new ArgumentException(problem, nameof(value));

    /// <summary>The per-currency account that deposits are funded from (money entering the platform).</summary>
    public static AccountId ExternalFunding(Currency currency) => new($"{SystemPrefix}external-funding.{currency.Code}");

    /// <summary>The per-currency suspense account that holds money between a debtor's hold and the creditor's credit.</summary>
    public static AccountId InTransit(Currency currency) => new($"{SystemPrefix}in-transit.{currency.Code}");

    /// <summary>Rebuilds an id read back from the ledger's own storage (system ids included).</summary>
    internal static AccountId FromStorage(string value) =>
        value.StartsWith(SystemPrefix, StringComparison.Ordinal) ? new AccountId(value) : Parse(value);

    public override string ToString() => Value;
}

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

    /// <summary>A customer id, or one of the system ids (<see cref="ExternalFunding"/>, <see cref="InTransit"/> of an
    /// active currency) exactly as this type spells them — for ids that cross a service boundary or come back from
    /// storage. Nothing else with the '@' prefix is accepted.</summary>
    /// <exception cref="ArgumentException">Neither a valid customer id nor a known system id.</exception>
    public static AccountId ParseAny(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (!value.StartsWith(SystemPrefix, StringComparison.Ordinal))
        {
            return Parse(value);
        }

        var dot = value.LastIndexOf('.');
        if (dot > 0 && Currency.TryFromCode(value[(dot + 1)..], out var currency)
            && (ExternalFunding(currency).Value == value || InTransit(currency).Value == value))
        {
            return new AccountId(value);
        }

        throw new ArgumentException($"'{value}' is not a known system account.", nameof(value));
    }

    /// <summary>Rebuilds an id read back from the ledger's own storage (system ids included).</summary>
    internal static AccountId FromStorage(string value) => ParseAny(value);

    public override string ToString() => Value;
}

using System.Diagnostics.CodeAnalysis;

namespace Payments.Domain;

/// <summary>A ledger account's id. Customer ids are 1–64 key-safe characters starting with a letter or digit;
/// system accounts (external funding, in-transit) carry the reserved '@' prefix that no caller can spell.</summary>
/// <remarks>Merchants name their accounts, and two merchants may pick the same name: the first to open an id keeps it
/// as its ledger id (as every account opened before namespaces did), any other's lives at <c>{merchant}~{id}</c>
/// (<see cref="OfMerchant"/>), so no merchant can take or probe another's names. '~' is in neither alphabet, so the
/// form cannot be spelled through the API, and <see cref="PublicId"/> recovers the merchant's name.</remarks>
public sealed record AccountId
{
    public const int MaxLength = 64;
    private const string SystemPrefix = "@";

    /// <summary>Between the merchant's id and its own account id in a namespaced ledger id.</summary>
    public const char MerchantSeparator = '~';

    private static readonly System.Buffers.SearchValues<char> MerchantIdCharacters =
        System.Buffers.SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-");

    /// <summary>A merchant id: 1–64 ASCII letters, digits, '-' or '_', starting with a letter or digit. A plain
    /// character check, not a regex: the regex it replaces had a 100 ms match timeout, which a starved CPU passed (a
    /// 500 for a valid payment, seen in CI), and its '$' also admitted a trailing newline.</summary>
    public static bool IsMerchantId([NotNullWhen(true)] string? merchantId) =>
        merchantId is { Length: > 0 and <= MaxLength } && char.IsAsciiLetterOrDigit(merchantId[0])
        && !merchantId.AsSpan(1).ContainsAnyExcept(MerchantIdCharacters);

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

    /// <summary>The ledger id of <paramref name="merchantId"/>'s account <paramref name="accountId"/> when another
    /// merchant holds the plain id (see the remarks above).</summary>
    /// <exception cref="ArgumentException">Not a merchant id, or not a customer id.</exception>
    public static AccountId OfMerchant(string merchantId, AccountId accountId)
    {
        ArgumentNullException.ThrowIfNull(accountId);
        if (!IsMerchantId(merchantId))
        {
            throw new ArgumentException("Not a merchant id.", nameof(merchantId));
        }

        if (accountId.IsSystem || accountId.IsNamespaced)
        {
            throw new ArgumentException("Only a customer id has a merchant's namespace.", nameof(accountId));
        }

        return new AccountId(merchantId + MerchantSeparator + accountId.Value);
    }

    /// <summary>True for a <c>{merchant}~{id}</c> ledger id (<see cref="OfMerchant"/>).</summary>
    public bool IsNamespaced => Value.Contains(MerchantSeparator, StringComparison.Ordinal);

    /// <summary>The id the merchant knows the account by (the id without its namespace).</summary>
    public string PublicId => PublicIdOf(Value);

    /// <summary>The id a merchant knows a ledger id by: the part after '~' of a namespaced id, else the id itself.</summary>
    public static string PublicIdOf(string ledgerId)
    {
        ArgumentNullException.ThrowIfNull(ledgerId);
        var separator = ledgerId.IndexOf(MerchantSeparator, StringComparison.Ordinal);
        return separator < 0 ? ledgerId : ledgerId[(separator + 1)..];
    }

    /// <summary>A customer id or a merchant's namespaced one (never a system id): for the ids services pass each
    /// other, which the API resolved from a merchant's own.</summary>
    public static bool TryParseLedger(string? value, [NotNullWhen(true)] out AccountId? id, out string? problem)
    {
        var separator = value?.IndexOf(MerchantSeparator, StringComparison.Ordinal) ?? -1;
        if (separator < 0)
        {
            return TryParse(value, out id, out problem);
        }

        id = null;
        if (!IsMerchantId(value![..separator]))
        {
            problem = "An account id's namespace must be a merchant id.";
            return false;
        }

        if (!TryParse(value[(separator + 1)..], out _, out problem))
        {
            return false;
        }

        id = new AccountId(value);
        return true;
    }

    /// <exception cref="ArgumentException">Not a customer or namespaced id; see <see cref="TryParseLedger"/>.</exception>
    public static AccountId ParseLedger(string value) =>
        TryParseLedger(value, out var id, out var problem) ? id : throw new ArgumentException(problem, nameof(value));

    /// <summary>The per-currency account that deposits are funded from (money entering the platform).</summary>
    public static AccountId ExternalFunding(Currency currency) => new($"{SystemPrefix}external-funding.{currency.Code}");

    /// <summary>The per-currency suspense account that holds money between a debtor's hold and the creditor's credit.</summary>
    public static AccountId InTransit(Currency currency) => new($"{SystemPrefix}in-transit.{currency.Code}");

    /// <summary>A customer id (plain or namespaced), or one of the system ids (<see cref="ExternalFunding"/>,
    /// <see cref="InTransit"/> of an active currency) exactly as this type spells them — for ids that cross a service
    /// boundary or come back from storage. Nothing else with the '@' prefix is accepted.</summary>
    /// <exception cref="ArgumentException">Neither a valid customer id nor a known system id.</exception>
    public static AccountId ParseAny(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (!value.StartsWith(SystemPrefix, StringComparison.Ordinal))
        {
            return ParseLedger(value);
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

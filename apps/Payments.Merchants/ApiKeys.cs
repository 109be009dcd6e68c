using Payments.Domain;

namespace Payments.Merchants;

/// <summary>What an API key may do. A key carries a subset; each public route names the scope it needs
/// (docs/api.md, "Keys and scopes").</summary>
public static class ApiScopes
{
    public const string AccountsRead = "accounts:read";
    public const string AccountsWrite = "accounts:write";
    public const string PaymentsRead = "payments:read";
    public const string PaymentsWrite = "payments:write";

    /// <summary>Approve or reject a payment held for review — and never one the same key created (four eyes).</summary>
    public const string PaymentsApprove = "payments:approve";

    /// <summary>Register, rotate and delete webhook endpoints (the events themselves are read with payments:read).</summary>
    public const string WebhooksManage = "webhooks:manage";

    public static readonly IReadOnlyList<string> All = [AccountsRead, AccountsWrite, PaymentsRead, PaymentsWrite, PaymentsApprove, WebhooksManage];

    /// <summary>A key issued without a scope list: everything a merchant's integration needs, except approving,
    /// which goes to a reviewer's key on purpose.</summary>
    public static readonly IReadOnlyList<string> Default = [AccountsRead, AccountsWrite, PaymentsRead, PaymentsWrite, WebhooksManage];

    public static bool IsKnown(string scope) => All.Contains(scope, StringComparer.Ordinal);
}

/// <summary>Which kind of deployment a key belongs to: its prefix says so (<c>dp_live_</c>, <c>dp_test_</c>), so secret
/// scanners recognise a leaked key and a test key pasted into a live deployment is refused before any lookup.</summary>
public static class ApiKeyModes
{
    public const string Live = "live";
    public const string Test = "test";

    public static bool IsKnown(string mode) => mode is Live or Test;

    public static string Prefix(string mode) => $"dp_{mode}_";

    /// <summary>The mode named by a key's prefix, or null for a key without one (issued before modes existed).</summary>
    public static string? Of(string key) =>
        key.StartsWith(Prefix(Live), StringComparison.Ordinal) ? Live
        : key.StartsWith(Prefix(Test), StringComparison.Ordinal) ? Test
        : null;
}

/// <summary>A merchant: the tenant every key, account and payment belongs to.</summary>
public sealed record MerchantRecord(string MerchantId, string? Name, DateTimeOffset CreatedAt)
{
    public const int MaxNameLength = 200;
    /// <summary>1–64 ASCII letters, digits, '-' or '_', starting with a letter or digit (<see cref="AccountId.IsMerchantId"/>,
    /// which names account namespaces by the same ids).</summary>
    public static bool IsValidId(string? merchantId) => AccountId.IsMerchantId(merchantId);
}

/// <summary>An API key as stored (under its hash: the key itself is never stored) and as listed.</summary>
/// <param name="Last4">The key's last four characters, so a person can tell keys apart in a list.</param>
/// <param name="ExpiresAt">Set when the key was rotated: it keeps working until then (the overlap window).</param>
/// <param name="HolderId">The id of the first key of this key's rotation chain (null: this key is the first). A rotated
/// key is the same credential in the same hands, so four eyes compares holders, not key ids.</param>
/// <param name="RevokedAt">Set when the key was revoked: it works nowhere from then on, whatever a reader's clock
/// says (a revoked key is also given <paramref name="ExpiresAt"/>, for readers that predate this field).</param>
/// <param name="SuccessorId">The key this one was rotated to (null: not rotated, or rotated before this field).</param>
public sealed record ApiKeyRecord(
    string KeyId, string MerchantId, string Mode, string Last4, IReadOnlyList<string> Scopes, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt,
    string? HolderId = null, DateTimeOffset? RevokedAt = null, string? SuccessorId = null)
{
    /// <summary>Whether the key was rotated (it has an end and was not revoked): it has a successor already.</summary>
    public bool IsRotated => ExpiresAt is not null && RevokedAt is null;

    public string Prefix => ApiKeyModes.Prefix(Mode);

    /// <summary>Who holds this key: the first key id of its rotation chain.</summary>
    public string Holder => HolderId ?? KeyId;

    /// <summary>Whether the key has ended: revoked, or past its rotation overlap.</summary>
    public bool IsExpired(DateTimeOffset now) => RevokedAt is not null || (ExpiresAt is { } expires && expires <= now);
}

/// <summary>A key just issued: <see cref="Key"/> is shown this once and never again.</summary>
public sealed record IssuedApiKey(string Key, ApiKeyRecord Record);

/// <summary>A key in a merchant's list, with when it was last used (recorded at most once a minute per replica).</summary>
public sealed record ApiKeyListing(ApiKeyRecord Record, DateTimeOffset? LastUsedAt);

/// <summary>Who a request comes from: the merchant, which of its keys (and that key's holder: the first key of its
/// rotation chain, <see cref="ApiKeyRecord.Holder"/>), and what that key may do.</summary>
public sealed record ApiPrincipal(string MerchantId, string KeyId, IReadOnlyList<string> Scopes, string? HolderId = null)
{
    public string Holder => HolderId ?? KeyId;

    public bool Has(string scope) => Scopes.Contains(scope, StringComparer.Ordinal);
}

/// <summary>Outcomes of key administration that are the caller's to handle.</summary>
public enum KeyAdminResult
{
    Done,
    MerchantNotFound,
    KeyNotFound,
    KeyLimitReached,
    KeyAlreadyRotated,
}

namespace Payments.Api.Contracts;

// Request and response bodies of API v1 (ARCHITECTURE §6). Requests use nullable fields so that a missing field
// is told apart from a zero and reported by name; unknown fields are refused by the serializer settings. A parameter
// with a default is optional, and the OpenAPI document says so (ApiDocumentation.RequestMembers).

public sealed record OpenAccountRequest(string? AccountId, string? Currency, long? OverdraftLimitMinor = null);

/// <summary>An account. The money fields and the version are left out (null) in the answer to an open by a key without
/// accounts:read: an open is idempotent, so the account may hold money, and balances are what that scope guards — the
/// version too, which counts the account's transfers (a probe read a busy account's activity from it).</summary>
public sealed record AccountResponse(
    string AccountId, string Currency,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] long? BalanceMinor,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] long? PendingDebitMinor,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] long? AvailableMinor,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] long? OverdraftLimitMinor,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] long? Version);

public sealed record DepositRequest(long? AmountMinor, string? Currency);

public sealed record DepositResponse(string DepositId, string AccountId, long AmountMinor, string Currency);

/// <summary>The body of approve and reject, when one is sent: no fields (an empty object, or no body at all).</summary>
public sealed record PaymentDecisionRequest;

public sealed record CreatePaymentRequest(string? DebtorAccountId, string? CreditorAccountId, long? AmountMinor, string? Currency, string? Reference = null);

public sealed record PaymentLinks(string Self, string? Approve, string? Reject);

public sealed record PaymentAccepted(string PaymentId, string Status, PaymentLinks Links);

public sealed record PaymentResponse(
    string PaymentId,
    string Status,
    long AmountMinor,
    string Currency,
    string DebtorAccountId,
    string CreditorAccountId,
    string? Reference,
    string? Reason,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    PaymentReviewResponse? Review);

/// <summary>Who approved or rejected a payment held for review (the reviewer's API key id), and when.</summary>
public sealed record PaymentReviewResponse(string Decision, string DecidedBy, DateTimeOffset DecidedAt);

// Admin API v1 (operator credential; docs/api.md, "Merchants and keys").

public sealed record CreateMerchantRequest(string? MerchantId, string? Name = null);

public sealed record MerchantResponse(string MerchantId, string? Name, DateTimeOffset CreatedAt);

public sealed record IssueKeyRequest(IReadOnlyList<string>? Scopes = null);

public sealed record RotateKeyRequest(long? OverlapSeconds = null);

/// <summary>A key to revoke, named by itself (a leaked key, found wherever it leaked).</summary>
public sealed record RevokePresentedKeyRequest(string? ApiKey);

/// <summary>A key as listed: never the key itself, only what tells it apart.</summary>
public sealed record ApiKeyResponse(
    string KeyId, string Prefix, string Last4, IReadOnlyList<string> Scopes, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt, DateTimeOffset? LastUsedAt);

/// <summary>A key just issued: <see cref="Key"/> is shown in this response only.</summary>
public sealed record IssuedKeyResponse(string Key, ApiKeyResponse Details);

public sealed record ApiKeyList(IReadOnlyList<ApiKeyResponse> Keys);

public sealed record SetOverdraftRequest(long? OverdraftLimitMinor);

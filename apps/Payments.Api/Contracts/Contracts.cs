namespace Payments.Api.Contracts;

// Request and response bodies of API v1 (ARCHITECTURE §6). Requests use nullable fields so that a missing field
// is told apart from a zero and reported by name; unknown fields are refused by the serializer settings.

public sealed record OpenAccountRequest(string? AccountId, string? Currency, long? OverdraftLimitMinor);

public sealed record AccountResponse(
    string AccountId, string Currency, long BalanceMinor, long PendingDebitMinor, long AvailableMinor, long OverdraftLimitMinor, long Version);

public sealed record DepositRequest(long? AmountMinor, string? Currency);

public sealed record DepositResponse(string DepositId, string AccountId, long AmountMinor, string Currency);

public sealed record CreatePaymentRequest(string? DebtorAccountId, string? CreditorAccountId, long? AmountMinor, string? Currency, string? Reference);

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
    DateTimeOffset UpdatedAt);

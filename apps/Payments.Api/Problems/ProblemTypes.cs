namespace Payments.Api.Problems;

/// <summary>The stable problem <c>type</c> URIs of API v1 (RFC 9457). Clients branch on these, never on titles.</summary>
public static class ProblemTypes
{
    public const string Base = "https://daprpayments.dev/problems/";

    public const string MalformedRequest = Base + "malformed-request";
    public const string ValidationFailed = Base + "validation-failed";
    public const string PayloadTooLarge = Base + "payload-too-large";
    public const string UnsupportedMediaType = Base + "unsupported-media-type";
    public const string Unauthorized = Base + "unauthorized";
    public const string NotFound = Base + "not-found";
    public const string AccountNotFound = Base + "account-not-found";
    public const string PaymentNotFound = Base + "payment-not-found";
    public const string AccountExists = Base + "account-exists";
    public const string CurrencyMismatch = Base + "currency-mismatch";
    public const string AccountClosed = Base + "account-closed";
    public const string IdempotencyKeyMissing = Base + "idempotency-key-missing";
    public const string IdempotencyKeyInvalid = Base + "idempotency-key-invalid";
    public const string IdempotencyKeyReuse = Base + "idempotency-key-reuse";
    public const string IdempotencyKeyInUse = Base + "idempotency-key-in-use";
    public const string PaymentNotAwaitingApproval = Base + "payment-not-awaiting-approval";
    public const string RateLimited = Base + "rate-limited";
    public const string ServiceUnavailable = Base + "service-unavailable";
    public const string RegionNotWritable = Base + "region-not-writable";
    public const string InternalError = Base + "internal-error";
}

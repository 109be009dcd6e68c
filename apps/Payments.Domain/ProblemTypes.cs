namespace Payments.Domain;

/// <summary>The stable problem <c>type</c> URIs (RFC 9457) of every DaprPayments service: the public API v1 and the
/// internal ledger and failover APIs. Clients branch on these, never on titles; once published, a type never changes meaning.</summary>
public static class ProblemTypes
{
    public const string Base = "https://daprpayments.dev/problems/";

    public const string MalformedRequest = Base + "malformed-request";

    /// <summary>An HTTP status with no type of its own (a 408, a 431…): <c>http-{status}</c> (docs/api.md).</summary>
    public static string ForStatus(int status) => Base + "http-" + status.ToString(System.Globalization.CultureInfo.InvariantCulture);
    public const string ValidationFailed = Base + "validation-failed";
    public const string PayloadTooLarge = Base + "payload-too-large";
    public const string UnsupportedMediaType = Base + "unsupported-media-type";
    public const string Unauthorized = Base + "unauthorized";

    /// <summary>Public API: a request that came over plain HTTP where the deployment requires HTTPS.</summary>
    public const string HttpsRequired = Base + "https-required";

    /// <summary>Internal services: the caller is authenticated, but its role may not perform this operation.</summary>
    public const string Forbidden = Base + "forbidden";

    /// <summary>Public API: the API key is valid but lacks the scope this operation needs.</summary>
    public const string InsufficientScope = Base + "insufficient-scope";

    /// <summary>Public API: approving or rejecting a payment with the key that created it (four eyes).</summary>
    public const string SameKeyReview = Base + "same-key-review";

    /// <summary>Public API: another decision on this payment was recorded first.</summary>
    public const string PaymentAlreadyDecided = Base + "payment-already-decided";

    /// <summary>Public API: the merchant has as many payments in flight as it may; retry after Retry-After.</summary>
    public const string TooManyPaymentsInFlight = Base + "too-many-payments-in-flight";

    /// <summary>Admin API: no such merchant, or no such key of that merchant.</summary>
    public const string MerchantNotFound = Base + "merchant-not-found";
    public const string ApiKeyNotFound = Base + "api-key-not-found";

    /// <summary>Admin API: a merchant with this id exists under another name (a create is idempotent only for the same
    /// body: answering 200 with the old record told the operator nothing of the name not taken).</summary>
    public const string MerchantExists = Base + "merchant-exists";

    /// <summary>Admin API: the merchant holds <c>MerchantStore.MaxKeysPerMerchant</c> keys; revoke one first.</summary>
    public const string ApiKeyLimitReached = Base + "api-key-limit-reached";

    /// <summary>The key was rotated already: its successor is the one to rotate (a second rotation made a second
    /// live successor, and parallel retries of one made several).</summary>
    public const string ApiKeyAlreadyRotated = Base + "api-key-already-rotated";

    /// <summary>Public API: the merchant's deposits in the currency today would pass their daily maximum.</summary>
    public const string DepositVolumeExceeded = Base + "deposit-volume-exceeded";

    /// <summary>No such route (e.g. the admin API asked of the public edge).</summary>
    public const string NotFound = Base + "not-found";
    public const string MethodNotAllowed = Base + "method-not-allowed";

    /// <summary>501: a request method not implemented for any resource (a spelling other than the standard one, CONNECT).</summary>
    public const string MethodNotImplemented = Base + "method-not-implemented";

    /// <summary>Admin API: the service has no operator credential configured, so its admin API is off.</summary>
    public const string AdminNotConfigured = Base + "admin-not-configured";
    public const string AccountNotFound = Base + "account-not-found";

    /// <summary>No webhook endpoint with that id for this merchant.</summary>
    public const string WebhookEndpointNotFound = Base + "webhook-endpoint-not-found";

    /// <summary>The merchant has the most webhook endpoints allowed; delete one first.</summary>
    public const string WebhookEndpointLimitReached = Base + "webhook-endpoint-limit-reached";

    /// <summary>The merchant has opened the most accounts allowed (<c>payments.publicApi.maxAccountsPerMerchant</c>).</summary>
    public const string AccountLimitReached = Base + "account-limit-reached";
    public const string PaymentNotFound = Base + "payment-not-found";
    public const string AccountExists = Base + "account-exists";
    public const string CurrencyMismatch = Base + "currency-mismatch";
    public const string AccountClosed = Base + "account-closed";
    public const string IdempotencyKeyMissing = Base + "idempotency-key-missing";
    public const string IdempotencyKeyInvalid = Base + "idempotency-key-invalid";
    public const string IdempotencyKeyReuse = Base + "idempotency-key-reuse";

    /// <summary>A webhook secret rotation retried under its Idempotency-Key after another rotation of the endpoint:
    /// rotating again would end the secret the later rotation made.</summary>
    public const string RotationSuperseded = Base + "rotation-superseded";
    public const string IdempotencyKeyInUse = Base + "idempotency-key-in-use";
    public const string PaymentNotAwaitingApproval = Base + "payment-not-awaiting-approval";
    public const string RateLimited = Base + "rate-limited";

    /// <summary>422: a deposit or payment above its currency's configured maximum (Payments:MoneyLimits).</summary>
    public const string AmountLimitExceeded = Base + "amount-limit-exceeded";

    /// <summary>403: a merchant asked for an overdraft; only the operator sets one.</summary>
    public const string OverdraftSetByOperator = Base + "overdraft-set-by-operator";

    /// <summary>422: an overdraft limit above its currency's configured maximum.</summary>
    public const string OverdraftLimitExceeded = Base + "overdraft-limit-exceeded";

    /// <summary>422: an overdraft limit below what the account already uses (the ledger's <c>overdraft-in-use</c>).</summary>
    public const string OverdraftInUse = Base + "overdraft-in-use";

    /// <summary>422: the ledger refused a transfer that would take a system account beyond its bound (the ledger's
    /// <c>balance-limit-exceeded</c>); nothing was applied.</summary>
    public const string BalanceLimitExceeded = Base + "balance-limit-exceeded";
    public const string ServiceUnavailable = Base + "service-unavailable";
    public const string RegionNotWritable = Base + "region-not-writable";
    public const string InternalError = Base + "internal-error";

    /// <summary>Ledger service: a sync-mode write committed but not yet durable in Cosmos DB (retry with the same ids).</summary>
    public const string ReplicationPending = Base + "replication-pending";

    /// <summary>The ledger's internal API: no transfer by that id. Named, so a caller can tell it from a route an older
    /// ledger does not have (a bare 404), which must not be read as "no transfer".</summary>
    public const string TransferNotFound = Base + "transfer-not-found";

    /// <summary>Failover admin: a switchover asked of a region that does not hold the active-region record.</summary>
    public const string NotTheActiveRegion = Base + "not-the-active-region";

    /// <summary>Failover admin: a switchover is running, the last one (of either region) was within the cool-down, or
    /// this one was abandoned (replication did not catch up, or the record changed); nothing was handed over.</summary>
    public const string SwitchoverNotNow = Base + "switchover-not-now";
}

namespace Payments.Ledger.Contracts;

/// <summary>The ledger stayed unreachable or contended past its bounds. An infrastructure fault, so an exception;
/// nothing was applied twice, and retrying with the same transfer ids is safe.</summary>
public sealed class LedgerUnavailableException(string message) : Exception(message);

/// <summary>The write committed in this region's ledger but is not yet durable in the other region (sync replication,
/// Cosmos DB slow or unreachable), so it is not acknowledged. Not a failure: the same request again (same transfer
/// ids) replays the committed write and waits for its shipping anew. Callers past a saga's pivot wait it out.</summary>
public sealed class LedgerReplicationPendingException(string message) : Exception(message);

/// <summary>A write was rejected because this region is not the active one (its epoch mirror is gone or newer).
/// Nothing was written; the caller should answer 503 with Retry-After, and clients retry (with the same ids) against
/// the active region.</summary>
public sealed class RegionNotWritableException(string message) : Exception(message);

/// <summary>The ledger refused the request itself (a 4xx problem): not an outage, and no business outcome either — those
/// come back as 200 bodies. A request the caller validated that the ledger refuses is a defect or a configuration that
/// differs between services (the ledger's money limits stricter than the API's, say): answered as the API's own
/// fault (500), with its trace, never as "unavailable, retry", which hid it behind an outage that never ended (a review).</summary>
public sealed class LedgerRefusedRequestException(int status, string? problemType, string message) : Exception(message)
{
    public int Status { get; } = status;

    public string? ProblemType { get; } = problemType;
}

namespace Payments.Api.Webhooks;

/// <summary>A signing secret of an endpoint; <paramref name="ExpiresAt"/> set on the secret a rotation replaced,
/// which still signs deliveries until then so receivers can switch without dropping any.</summary>
public sealed record WebhookSecret(string Secret, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt);

/// <summary>A keyed rotation of an endpoint's secret: its key (as <see cref="WebhookEndpoint.RotatedBy"/>), when, and
/// the overlap it asked for (null in marks written before it was kept): the key again with another is another request.</summary>
public sealed record RotationMark(string Key, DateTimeOffset At, long? OverlapSeconds = null);

/// <summary>Where a merchant wants its payment events sent.</summary>
/// <param name="Events">The event types sent there; empty: all of them.</param>
/// <param name="RotatedBy">The last rotation's Idempotency-Key (hashed with the endpoint, see
/// <see cref="WebhookEndpointStore.RotateSecretAsync"/>), if it had one.</param>
/// <param name="RotatedWithOverlapSeconds">The overlap that rotation asked for (absent on records from before it was
/// kept, or rewritten by a replica of that version).</param>
/// <param name="EarlierRotations">The keys of keyed rotations before the last, within a day, at most
/// <see cref="WebhookEndpointStore.MaxEarlierRotations"/>: a retry of one of them rotated again.</param>
public sealed record WebhookEndpoint(
    string Id, string MerchantId, string Url, IReadOnlyList<string> Events, string? Description, DateTimeOffset CreatedAt,
    IReadOnlyList<WebhookSecret> Secrets, string? RotatedBy = null, long? RotatedWithOverlapSeconds = null,
    IReadOnlyList<RotationMark>? EarlierRotations = null)
{
    public bool Wants(string eventType) => Events.Count == 0 || Events.Contains(eventType, StringComparer.Ordinal);

    /// <summary>The secrets that sign a delivery at <paramref name="now"/>: the current one and any not yet expired.</summary>
    public IReadOnlyList<string> SigningSecrets(DateTimeOffset now) =>
        Secrets.Where(secret => secret.ExpiresAt is null || secret.ExpiresAt > now).Select(secret => secret.Secret).ToArray();
}

/// <summary>An Idempotency-Key used for the endpoint's last rotation came again with a different request.</summary>
public sealed class IdempotencyKeyReusedException() : InvalidOperationException("The Idempotency-Key was used with a different request.");

/// <summary>The Idempotency-Key named a rotation that another rotation of the endpoint followed.</summary>
public sealed class RotationSupersededException() : InvalidOperationException("Another rotation followed the one this Idempotency-Key made.");

/// <summary>The merchant created <see cref="WebhookEndpointStore.MaxCreationsPerDay"/> endpoints today already.</summary>
public sealed class WebhookEndpointCreationsSpentException(DateTimeOffset nextDay)
    : InvalidOperationException($"At most {WebhookEndpointStore.MaxCreationsPerDay} webhook endpoints may be created per UTC day.")
{
    /// <summary>When the next UTC day starts (a new budget).</summary>
    public DateTimeOffset NextDay { get; } = nextDay;
}

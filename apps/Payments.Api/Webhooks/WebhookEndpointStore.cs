using System.Security.Cryptography;
using System.Text.Json;
using Etcdserverpb;
using Google.Protobuf;
using Payments.Etcd;
using Payments.Webhooks;

namespace Payments.Api.Webhooks;

/// <summary>Webhook endpoints on etcd, <c>{webhooks}endpoints/{merchant}/{endpoint id}</c>; every change is
/// create-only or compare-and-swap, fenced by the region's epoch. The signing secrets are stored as they are (the
/// dispatcher must sign with them); the API's etcd role reads this family, and the ledger's, which ships it to the
/// other region (the failover service's there applies it): docs/security.md.</summary>
public sealed class WebhookEndpointStore(EtcdConnection etcd, string webhooksPrefix, TimeProvider time)
{
    public const int MaxEndpointsPerMerchant = 16; // as Stripe allows

    public static readonly TimeSpan MaxSecretOverlap = TimeSpan.FromHours(24); // how long a replaced secret may keep signing, at most and by default

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>The longest a create, delete or rotation waits for its merchant's turn on this replica (then 503).</summary>
    public static readonly TimeSpan TurnTimeout = TimeSpan.FromSeconds(10);

    /// <summary>One replica's changes of a merchant's endpoints take turns: a create compares the merchant's whole range,
    /// so any other change of it meanwhile makes it count again, and eight clients creating and deleting at once ended
    /// in 503s after the eighth lost round (a probe). Another replica's changes still race, and the rounds cover those.</summary>
    private readonly Payments.Api.Limits.KeyedGates turns = new();

    private Task<IDisposable> TurnAsync(string merchantId, CancellationToken cancellationToken) =>
        turns.TurnAsync(merchantId, TurnTimeout, $"The webhook endpoints of merchant {merchantId}", cancellationToken);

    private readonly string root = EtcdBytes.AsPrefix(webhooksPrefix) + "endpoints/";
    private readonly string removedRoot = EtcdBytes.AsPrefix(webhooksPrefix) + "removed/";

    /// <summary>Endpoints one merchant may create per UTC day. Each deletion leaves a removal record for 8 days
    /// (<see cref="WebhookEndpointRemovals"/>) and the live bound counts no deletions, so a create-and-delete loop at a
    /// key's request rate wrote ~2.8 GB of them a day: etcd's quota filled and every merchant's payments stopped (a
    /// review finding). 100 a day bounds a merchant's removal records at ~100 KB.</summary>
    public const int MaxCreationsPerDay = 100;

    /// <summary><c>{webhooks}created/{day's start, unix ms}/{merchant}</c>: how many endpoints the merchant created that
    /// day in this region; trimmed with the removal records once the day before is over.</summary>
    private readonly string createdRoot = EtcdBytes.AsPrefix(webhooksPrefix) + "created/";

    /// <summary>Creates an endpoint with a new secret under <paramref name="endpointId"/> (null: a random id), or finds
    /// the one that id names already (<c>Created</c> false: a retry of the request that created it); null when the
    /// merchant has <see cref="MaxEndpointsPerMerchant"/> already. Exact under concurrency: the create's transaction
    /// holds only if none of the merchant's endpoints was created or changed since the count (a compare over the
    /// merchant's whole range), else it counts again, at most <see cref="MaxCreateAttempts"/> times. Concurrent creates
    /// used to pass the bound by as many as ran at once, and the endpoints past what a list reads (<see cref="RangeOf"/>)
    /// were then never listed nor sent anything.</summary>
    public async Task<(WebhookEndpoint Endpoint, bool Created)?> CreateAsync(
        string merchantId, string url, IReadOnlyList<string> events, string? description, CancellationToken cancellationToken, string? endpointId = null)
    {
        using var turn = await TurnAsync(merchantId, cancellationToken);
        for (var attempt = 1; attempt <= MaxCreateAttempts; attempt++)
        {
            var id = endpointId ?? IdPrefix + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
            var key = Key(merchantId, id);
            var count = RangeOf(merchantId);
            count.CountOnly = true;
            var now = time.GetUtcNow();
            var createdKey = createdRoot + EtcdBytes.TimeKey(DayOf(now)) + "/" + merchantId;
            var read = new TxnRequest();
            read.Success.Add(new RequestOp { RequestRange = count });
            read.Success.Add(EtcdBytes.Get(key));
            read.Success.Add(EtcdBytes.Get(createdKey));
            var counted = await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(read, cancellationToken: token), cancellationToken);
            if (counted.Responses[1].ResponseRange.Kvs.FirstOrDefault() is { } existing)
            {
                return (Decode(existing.Value), false);
            }

            if (counted.Responses[0].ResponseRange.Count >= MaxEndpointsPerMerchant)
            {
                return null;
            }

            var createdToday = counted.Responses[2].ResponseRange.Kvs.FirstOrDefault();
            var createdCount = createdToday is null ? 0 : long.Parse(createdToday.Value.ToStringUtf8(), System.Globalization.CultureInfo.InvariantCulture);
            if (createdCount >= MaxCreationsPerDay)
            {
                throw new WebhookEndpointCreationsSpentException(DayOf(now) + TimeSpan.FromDays(1));
            }

            var endpoint = new WebhookEndpoint(id, merchantId, url, events, description, now, [new WebhookSecret(WebhookSignature.NewSecret(), now, null)]);
            var request = new TxnRequest();
            request.Compare.Add(EtcdBytes.CreateRevisionIs(key, 0));
            // Every key in the range last changed at or before the count's revision (an empty range holds too). A
            // deletion since leaves the count high: a refusal at worst, never one endpoint too many.
            request.Compare.Add(new Compare
            {
                Key = count.Key, RangeEnd = count.RangeEnd, Target = Compare.Types.CompareTarget.Mod,
                Result = Compare.Types.CompareResult.Less, ModRevision = counted.Header.Revision + 1,
            });
            request.Compare.Add(EtcdBytes.ModRevisionIs(createdKey, createdToday?.ModRevision ?? 0));
            request.Success.Add(EtcdBytes.Put(key, Encode(endpoint)));
            request.Success.Add(EtcdBytes.Put(createdKey, ByteString.CopyFromUtf8((createdCount + 1).ToString(System.Globalization.CultureInfo.InvariantCulture))));
            if (await FencedAsync(request, "the endpoint was not created", cancellationToken))
            {
                return (endpoint, true);
            }
        }

        throw new EtcdContentionException($"The webhook endpoints of merchant {merchantId} kept changing during {MaxCreateAttempts} attempts to add one.");
    }

    /// <summary>Counts and creates of one endpoint at most (each lost to a concurrent change of the merchant's endpoints).</summary>
    public const int MaxCreateAttempts = 8;

    public async Task<IReadOnlyList<WebhookEndpoint>> ListAsync(string merchantId, CancellationToken cancellationToken)
    {
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(RangeOf(merchantId), cancellationToken: token), cancellationToken);
        return [.. Own(response.Kvs.Select(kv => Decode(kv.Value)), merchantId)];
    }

    /// <summary>One merchant's endpoints (bounded far above what a merchant may have), by its ids' prefix: a legacy
    /// merchant id that continues this one's with a '/' had its endpoints listed to it, sent its events, and counted
    /// against its 16 (reviews); <see cref="Own"/> keeps out one that continues it with "/we_".</summary>
    private RangeRequest RangeOf(string merchantId)
    {
        var prefix = root + merchantId + "/" + IdPrefix;
        return new RangeRequest { Key = EtcdBytes.Key(prefix), RangeEnd = EtcdBytes.PrefixEnd(prefix), Limit = MaxEndpointsPerMerchant * 4 };
    }

    public const string IdPrefix = "we_"; // every endpoint id's, generated or derived from an Idempotency-Key

    private static IEnumerable<WebhookEndpoint> Own(IEnumerable<WebhookEndpoint> endpoints, string merchantId) => endpoints.Where(endpoint => endpoint.MerchantId == merchantId);

    /// <summary>The endpoints of each of <paramref name="merchantIds"/>, read in one transaction per
    /// <see cref="MaxMerchantsPerRead"/> merchants (etcd's default <c>--max-txn-ops</c> is 128) instead of one read
    /// per merchant: the dispatcher's round needs those of every merchant whose events it took.</summary>
    public async Task<IReadOnlyDictionary<string, IReadOnlyList<WebhookEndpoint>>> ListManyAsync(
        IReadOnlyCollection<string> merchantIds, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(merchantIds);
        var endpointsOf = new Dictionary<string, IReadOnlyList<WebhookEndpoint>>(StringComparer.Ordinal);
        foreach (var chunk in merchantIds.Distinct(StringComparer.Ordinal).Chunk(MaxMerchantsPerRead))
        {
            var request = new TxnRequest();
            request.Success.AddRange(chunk.Select(merchantId => new RequestOp { RequestRange = RangeOf(merchantId) }));

            var response = await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
            for (var index = 0; index < chunk.Length; index++)
            {
                // An endpoint record that does not read is left out (the dispatcher's round serves every merchant's
                // events: one such record stopped them all).
                endpointsOf[chunk[index]] = [.. Own(response.Responses[index].ResponseRange.Kvs.Select(kv => TryDecode(kv.Value)).OfType<WebhookEndpoint>(), chunk[index])];
            }
        }

        return endpointsOf;
    }

    /// <summary>Merchants whose endpoints one read of <see cref="ListManyAsync"/> covers.</summary>
    public const int MaxMerchantsPerRead = 100;

    public async Task<WebhookEndpoint?> GetAsync(string merchantId, string endpointId, CancellationToken cancellationToken) =>
        (await GetWithRevisionAsync(merchantId, endpointId, cancellationToken))?.Endpoint;

    /// <summary>Deletes the endpoint; false if there was none. Deliveries still due for it are dropped when they come up.
    /// The same transaction leaves a removal record (<see cref="WebhookEndpointRemovals"/>), which carries the deletion
    /// to the other region: shipping reads what is stored, and the endpoint came back there after a takeover.</summary>
    public async Task<bool> DeleteAsync(string merchantId, string endpointId, CancellationToken cancellationToken)
    {
        using var turn = await TurnAsync(merchantId, cancellationToken);
        var key = Key(merchantId, endpointId);
        var now = time.GetUtcNow();
        var request = new TxnRequest();
        request.Compare.Add(new Compare
        {
            Key = EtcdBytes.Key(key), Target = Compare.Types.CompareTarget.Create, Result = Compare.Types.CompareResult.Greater, CreateRevision = 0,
        });
        request.Success.Add(EtcdBytes.Delete(key));
        request.Success.Add(EtcdBytes.Put(
            WebhookEndpointRemovals.Key(removedRoot, merchantId, endpointId, now),
            WebhookEndpointRemovals.Encode(new WebhookEndpointRemovals.Removal(merchantId, endpointId, now))));
        return await FencedAsync(request, "the endpoint was not deleted", cancellationToken);
    }

    /// <summary>Endpoints read per page at most by <see cref="ShipExistingAsync"/> (and rewritten per transaction), and
    /// pages at most (a million endpoints: 16 per merchant for 62,500 merchants).</summary>
    public const int ShipExistingPageSize = 50, MaxShipExistingPages = 20_000;

    /// <summary>Rewrites every endpoint once, unchanged (each only if unchanged since read, under the region's fence),
    /// then records that it did (<c>{webhooks}endpoints-shipped</c>, this region's own: not shipped): shipping sends
    /// what changed since its checkpoint, so endpoints made before they were shipped (before 2026-12-05) reached the
    /// other region only when next rotated, and after a switchover to it no merchant was sent any event. Returns how
    /// many it rewrote (0 once done: one read). A region that takes over does it once too, over the copies it holds
    /// (they ship back unchanged).</summary>
    public async Task<int> ShipExistingAsync(CancellationToken cancellationToken)
    {
        var doneKey = EtcdBytes.AsPrefix(webhooksPrefix) + "endpoints-shipped"; // not under endpoints/: never shipped
        var done = await EtcdConnection.CallAsync(
            token => etcd.Kv.RangeAsync(new RangeRequest { Key = EtcdBytes.Key(doneKey), CountOnly = true }, cancellationToken: token), cancellationToken);
        if (done.Count > 0)
        {
            return 0;
        }

        var rewritten = 0;
        var from = EtcdBytes.Key(root);
        for (var page = 0; page < MaxShipExistingPages; page++)
        {
            var range = new RangeRequest { Key = from, RangeEnd = EtcdBytes.PrefixEnd(root), Limit = ShipExistingPageSize };
            var response = await EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(range, cancellationToken: token), cancellationToken);
            rewritten += await RewriteAsync(response.Kvs, cancellationToken);
            if (!response.More || response.Kvs.Count == 0)
            {
                var mark = new TxnRequest();
                mark.Success.Add(EtcdBytes.Put(doneKey, ByteString.CopyFromUtf8(time.GetUtcNow().ToString("O", System.Globalization.CultureInfo.InvariantCulture))));
                await FencedAsync(mark, "the endpoints' shipping was not recorded", cancellationToken);
                return rewritten;
            }

            from = ByteString.CopyFrom([.. response.Kvs[^1].Key.Span, 0]); // the next key after the last one read
        }

        return rewritten; // more than the bound: the next process goes on (from the start, rewriting again)
    }

    /// <summary>Puts each record again as it is, if unchanged since read (one changed since has shipped anyway): one
    /// transaction for the page, or one per record when another changed meanwhile.</summary>
    private async Task<int> RewriteAsync(IReadOnlyList<Mvccpb.KeyValue> kvs, CancellationToken cancellationToken)
    {
        static TxnRequest Rewrite(IEnumerable<Mvccpb.KeyValue> records)
        {
            var request = new TxnRequest();
            foreach (var kv in records)
            {
                request.Compare.Add(EtcdBytes.ModRevisionIs(kv.Key.ToStringUtf8(), kv.ModRevision));
                request.Success.Add(EtcdBytes.Put(kv.Key.ToStringUtf8(), kv.Value));
            }

            return request;
        }

        if (kvs.Count == 0 || await FencedAsync(Rewrite(kvs), "the endpoints were not rewritten", cancellationToken))
        {
            return kvs.Count;
        }

        var rewritten = 0;
        foreach (var kv in kvs)
        {
            rewritten += await FencedAsync(Rewrite([kv]), "the endpoint was not rewritten", cancellationToken) ? 1 : 0;
        }

        return rewritten;
    }

    /// <summary>The region's epoch fence (null: a single region). Endpoints are shipped to the other region from the
    /// active one only: a change a region made just after its demotion (its view of the epoch is polled) was answered
    /// 201 or 204 and never reached the region serving the merchant — a deleted endpoint kept receiving events there.</summary>
    public Func<IWriteFence?>? RegionFence { get; init; }

    /// <summary>Runs <paramref name="request"/> with the region's fence; whether it succeeded. Refused by the fence:
    /// <see cref="Payments.Ledger.Contracts.RegionNotWritableException"/> (the API answers 503 region-not-writable).</summary>
    private async Task<bool> FencedAsync(TxnRequest request, string consequence, CancellationToken cancellationToken)
    {
        var fence = RegionFence?.Invoke();
        fence?.AddFence(request);
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
        if (!response.Succeeded && fence is not null && fence.WasFencedOff(response))
        {
            throw new Payments.Ledger.Contracts.RegionNotWritableException(
                $"This region does not hold {fence.Description} (demoted, or another region was promoted); {consequence}.");
        }

        return response.Succeeded;
    }

    /// <summary>Deletes the removal records older than <see cref="WebhookEndpointRemovals.Retention"/> (one range
    /// delete: their keys begin with the time). Each region trims its own, the standby its copies too.</summary>
    public async Task TrimRemovalsAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var cutoff = removedRoot + EtcdBytes.TimeKey(now - WebhookEndpointRemovals.Retention);
        await EtcdConnection.CallAsync(token => etcd.Kv.DeleteRangeAsync(
            new DeleteRangeRequest { Key = EtcdBytes.Key(removedRoot), RangeEnd = EtcdBytes.Key(cutoff) }, cancellationToken: token), cancellationToken);
        // The creation counts of days before yesterday (yesterday's stays: another replica's clock may be behind).
        var countsCutoff = createdRoot + EtcdBytes.TimeKey(DayOf(now) - TimeSpan.FromDays(1));
        await EtcdConnection.CallAsync(token => etcd.Kv.DeleteRangeAsync(
            new DeleteRangeRequest { Key = EtcdBytes.Key(createdRoot), RangeEnd = EtcdBytes.Key(countsCutoff) }, cancellationToken: token), cancellationToken);
    }

    /// <summary>The start of <paramref name="at"/>'s UTC day.</summary>
    private static DateTimeOffset DayOf(DateTimeOffset at) => new(at.UtcDateTime.Date, TimeSpan.Zero);

    /// <summary>Secrets an endpoint signs with at once: the newest, and during a rotation's overlap the one it replaced.
    /// Without a bound every rotation within the overlap added a signature to each delivery's header.</summary>
    public const int MaxSecrets = 2;

    /// <summary>Gives the endpoint a new secret; the one it replaces keeps signing for <paramref name="overlap"/> at most
    /// (0: not at all — every older secret ends now, for a leak), and any older one ends now (<see cref="MaxSecrets"/>).
    /// Secrets already expired are dropped. Null if there is no such endpoint.</summary>
    /// <remarks>With <paramref name="rotationKey"/> (from the request's Idempotency-Key) a retry of the last rotation
    /// answers the endpoint as that rotation left it instead of rotating again: a second rotation kept only the secret
    /// of the first (the one whose answer was lost) and ended at once the one the receiver still verified with. The same
    /// key with another overlap throws <see cref="IdempotencyKeyReusedException"/>.</remarks>
    public async Task<WebhookEndpoint?> RotateSecretAsync(
        string merchantId, string endpointId, TimeSpan overlap, CancellationToken cancellationToken, string? rotationKey = null)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(overlap, MaxSecretOverlap);
        using var turn = await TurnAsync(merchantId, cancellationToken);
        for (var attempt = 0; attempt < 8; attempt++)
        {
            if (await GetWithRevisionAsync(merchantId, endpointId, cancellationToken) is not { Endpoint: var endpoint, Revision: var revision })
            {
                return null;
            }

            // The key and what it asked for (the overlap): the same again is this rotation's answer; another overlap
            // under the key is a different request (the caller gets 422, not a silent replay that kept a leaked secret
            // signing for a day). The overlap is a field of its own, the key kept as it was: a replica of the version
            // before, during a rolling upgrade, still finds the key and replays (it ignores the field) instead of
            // rotating twice; a rotation recorded without the overlap replays.
            var overlapSeconds = (long)overlap.TotalSeconds;
            if (rotationKey is not null && endpoint.RotatedBy == rotationKey)
            {
                return endpoint.RotatedWithOverlapSeconds is null || endpoint.RotatedWithOverlapSeconds == overlapSeconds
                    ? endpoint
                    : throw new IdempotencyKeyReusedException();
            }

            // A retry of an earlier rotation, another one since, is 409: rotating again ended the secret the receiver had
            // just switched to (two clients retrying swapped secrets back and forth); its key with another overlap, 422.
            var now = time.GetUtcNow();
            var earlier = Earlier(endpoint, now);
            if (rotationKey is not null && earlier.FirstOrDefault(mark => mark.Key == rotationKey) is { } made)
            {
                throw made.OverlapSeconds is { } asked && asked != overlapSeconds ? new IdempotencyKeyReusedException() : new RotationSupersededException();
            }

            var kept = endpoint.Secrets
                .Select(secret => secret with { ExpiresAt = secret.ExpiresAt is { } expires && expires < now + overlap ? expires : now + overlap })
                .Where(secret => secret.ExpiresAt > now)
                .OrderByDescending(secret => secret.CreatedAt)
                .Take(MaxSecrets - 1);
            if (endpoint.RotatedBy is { } last)
            {
                earlier = [.. earlier.TakeLast(MaxEarlierRotations - 1), new RotationMark(last, endpoint.Secrets[0].CreatedAt, endpoint.RotatedWithOverlapSeconds)];
            }

            var rotated = endpoint with
            {
                Secrets = [new WebhookSecret(WebhookSignature.NewSecret(), now, null), .. kept], RotatedBy = rotationKey,
                RotatedWithOverlapSeconds = rotationKey is null ? null : overlapSeconds, EarlierRotations = earlier.Count == 0 ? null : earlier,
            };
            var key = Key(merchantId, endpointId);
            var request = new TxnRequest();
            request.Compare.Add(EtcdBytes.ModRevisionIs(key, revision));
            request.Success.Add(EtcdBytes.Put(key, Encode(rotated)));
            if (await FencedAsync(request, "the secret was not rotated", cancellationToken))
            {
                return rotated;
            }
        }

        throw new EtcdContentionException($"Webhook endpoint {endpointId} kept changing during the rotation.");
    }

    /// <summary>Earlier keyed rotations remembered per endpoint, at most: a day of a client rotating hourly, and more.</summary>
    public const int MaxEarlierRotations = 32;

    /// <summary>The endpoint's earlier keyed rotations still within a key's day (<see cref="IdempotencyStore.Retention"/>).</summary>
    private static List<RotationMark> Earlier(WebhookEndpoint endpoint, DateTimeOffset now) =>
        [.. (endpoint.EarlierRotations ?? []).Where(mark => now - mark.At < IdempotencyStore.Retention)];

    private async Task<(WebhookEndpoint Endpoint, long Revision)?> GetWithRevisionAsync(string merchantId, string endpointId, CancellationToken cancellationToken)
    {
        var response = await EtcdConnection.CallAsync(
            token => etcd.Kv.RangeAsync(new RangeRequest { Key = EtcdBytes.Key(Key(merchantId, endpointId)) }, cancellationToken: token), cancellationToken);
        return response.Kvs.FirstOrDefault() is { } kv ? (Decode(kv.Value), kv.ModRevision) : null;
    }

    private string Key(string merchantId, string endpointId) => root + merchantId + "/" + endpointId;

    /// <summary>The etcd key of an endpoint (the dispatcher reads it with the event, in one transaction).</summary>
    public string KeyOf(string merchantId, string endpointId) => Key(merchantId, endpointId);

    private static ByteString Encode(WebhookEndpoint endpoint) => ByteString.CopyFrom(JsonSerializer.SerializeToUtf8Bytes(endpoint, Json));

    /// <summary>The endpoint, or null for a record that does not read.</summary>
    public static WebhookEndpoint? TryDecode(ByteString value)
    {
        try
        {
            return Decode(value);
        }
        catch (Exception exception) when (exception is JsonException or InvalidDataException or NotSupportedException)
        {
            return null;
        }
    }

    public static WebhookEndpoint Decode(ByteString value) =>
        JsonSerializer.Deserialize<WebhookEndpoint>(value.Span, Json) ?? throw new InvalidDataException("Empty webhook endpoint.");
}

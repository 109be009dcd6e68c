using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Payments.Domain;

namespace Payments.Etcd;

/// <summary>The API's Idempotency-Key records on etcd (Stripe's semantics): the first request with a key runs, later
/// ones with the same body get its response again, ones with another body are refused.</summary>
/// <remarks>
/// Records live at least <see cref="Retention"/>. Rather than one etcd lease per record (a Raft write each), records
/// created in the same hour share one lease whose TTL is the retention plus that hour, so every record lives between
/// 24 h and 25 h at the cost of one lease grant per hour.
/// <para>The API derives no operation id from a record: these records stay in their region (they are not shipped), so
/// an id must be found again from what is shipped — the payment records, the ledger's journal — for a retry in the
/// other region after a failover (<see cref="OperationId"/>).</para>
/// </remarks>
public sealed class IdempotencyStore
{
    /// <summary>The idempotency window: a key's record lives at least this long.</summary>
    public static readonly TimeSpan Retention = TimeSpan.FromHours(24);
    public static readonly TimeSpan LeaseBucketWidth = TimeSpan.FromHours(1);

    /// <summary>How long a claim is exclusive; after it a crashed request's key can be claimed again. Short on
    /// purpose: a claim left by an API replica that died holds every retry of that key at 409 until it lapses (the
    /// fault campaign saw clients wait out 60 s), and a takeover of a request that was only slow is harmless — the
    /// work behind a key is idempotent (payment and deposit ids derive from the key), only repeated.</summary>
    public static readonly TimeSpan InProgressTimeout = TimeSpan.FromSeconds(15);

    /// <summary>Attempts to release a claim (spanning an etcd leader election, ~1–3 s) before it is left to expire.</summary>
    public const int MaxReleaseAttempts = 6;
    public static readonly TimeSpan ReleaseRetryDelay = TimeSpan.FromMilliseconds(250);
    public static readonly TimeSpan MaxReleaseRetryDelay = TimeSpan.FromSeconds(1);
    private const int MaxCasAttempts = 8;

    /// <summary>What a released claim holds as its lock's end: long past on every clock, so a released key is free at
    /// once for every replica (and for a replica of the previous version, which reads it as a lapsed claim).</summary>
    private static readonly DateTimeOffset ReleasedLockEnd = DateTimeOffset.UnixEpoch;

    private readonly EtcdConnection etcd;
    private readonly string prefix;
    private readonly TimeProvider time;
    private readonly ConcurrentDictionary<long, Lazy<Task<long>>> leasesByBucket = new();
    private readonly TimeSpan retention;
    private readonly TimeSpan bucketWidth;

    /// <param name="prefix">The key prefix of this store's records, e.g. <c>/daprpayments/idempotency/</c>.</param>
    /// <param name="retention">How long records live at least (default <see cref="Retention"/>); shorter only where
    /// a soak compresses days into minutes.</param>
    public IdempotencyStore(EtcdConnection etcd, string prefix, TimeProvider time, TimeSpan? retention = null)
    {
        this.etcd = etcd;
        this.prefix = EtcdBytes.AsPrefix(prefix);
        this.time = time;
        this.retention = retention ?? Retention;
        ArgumentOutOfRangeException.ThrowIfLessThan(this.retention, TimeSpan.FromSeconds(10), nameof(retention));
        // A 24th of the retention: the default's hour, and records of a shortened retention still end close to it.
        bucketWidth = this.retention / (Retention / LeaseBucketWidth);
    }

    /// <summary>The key prefix of this store's records (the one a watch on them covers).</summary>
    public string Prefix => prefix;

    /// <summary>A stable fingerprint of a request (method, path, canonical body…), compared on every reuse of a key.</summary>
    public static string Fingerprint(params string[] parts) =>
        Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join('\n', parts))));

    /// <summary>The id of an operation (payment, deposit…) behind a key: a hash of the scope, the key and, when given,
    /// <paramref name="variant"/> (e.g. the day a payment of the key was started). Without one it is the id operations
    /// always had (scope and key only).</summary>
    /// <param name="idPrefix">The id's prefix, e.g. <c>pay_</c>.</param>
    /// <param name="hexChars">How many hex characters of the hash follow it.</param>
    public static string OperationId(string idPrefix, int hexChars, string scope, IdempotencyKey key, string? variant)
    {
        ArgumentException.ThrowIfNullOrEmpty(scope);
        ArgumentNullException.ThrowIfNull(key);
        var seed = variant is null ? $"{scope}\n{key.Value}" : $"{scope}\n{key.Value}\n{variant}";
        return idPrefix + Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(seed)))[..hexChars].ToLowerInvariant();
    }

    /// <summary>The ids an operation of <paramref name="key"/> may have at <paramref name="now"/>: under yesterday's,
    /// today's (index 1: a new operation's) and tomorrow's UTC day (another replica's clock a little ahead), then the id
    /// such operations had before days were part of it. An operation younger than <see cref="Retention"/> has one of
    /// the first three, so a durable record of the operation under one of them decides whether a request is a retry,
    /// and an operation archived days later can never be named again (docs/api.md).</summary>
    public static string[] OperationIdCandidates(string idPrefix, int hexChars, string scope, IdempotencyKey key, DateTimeOffset now)
    {
        var today = now.ToUnixTimeMilliseconds() / (long)TimeSpan.FromDays(1).TotalMilliseconds;
        string IdOf(long day) => OperationId(idPrefix, hexChars, scope, key, $"d{day.ToString(CultureInfo.InvariantCulture)}");
        return [IdOf(today - 1), IdOf(today), IdOf(today + 1), OperationId(idPrefix, hexChars, scope, key, variant: null)];
    }

    /// <summary>Claims the key for this request, or says why not (replay, in progress elsewhere, other body).</summary>
    /// <param name="scope">Whose key this is (a merchant id): keys of different merchants never collide.</param>
    public async Task<IdempotencyBegin> BeginAsync(string scope, IdempotencyKey key, string fingerprint, CancellationToken cancellationToken)
    {
        var recordKey = RecordKey(scope, key);
        for (var attempt = 1; attempt <= MaxCasAttempts; attempt++)
        {
            var now = time.GetUtcNow();
            var claim = new IdempotencyRecord(fingerprint, IdempotencyState.InProgress, null, null, null, now, now + InProgressTimeout);
            TxnResponse? response;
            long lease;
            try
            {
                (response, claim, lease) = await CreateAsync(recordKey, claim, cancellationToken);
            }
            catch (RpcException exception) when (IsLeaseNotFound(exception))
            {
                // The hour's shared lease is gone (revoked, or etcd restored from a backup): grant a new one and retry.
                leasesByBucket.Clear();
                continue;
            }

            if (response is null)
            {
                continue; // raced with another creation or an expiry: look again
            }

            if (response.Succeeded)
            {
                return new IdempotencyBegin.Started(ClaimOf(recordKey, response.Header.Revision, claim, lease));
            }

            var existing = response.Responses[0].ResponseRange.Kvs.FirstOrDefault();
            if (existing is null)
            {
                continue; // Expired between our compare and read: try to create it again.
            }

            var record = Deserialize(existing.Value);
            if (Judge(recordKey, record, fingerprint, now) is { } answer)
            {
                return answer;
            }

            // The request that claimed it stopped without finishing (or released it): take over, unless someone else
            // just did. Same creation, same lease: the expiry does not move.
            var takeoverRecord = claim with { CreatedAt = record.CreatedAt };
            var takeover = new TxnRequest();
            takeover.Compare.Add(EtcdBytes.ModRevisionIs(recordKey, existing.ModRevision));
            takeover.Success.Add(EtcdBytes.Put(recordKey, Serialize(takeoverRecord), existing.Lease));
            var takeoverResponse = await TxnAsync(takeover, cancellationToken);
            if (takeoverResponse.Succeeded)
            {
                return new IdempotencyBegin.Started(ClaimOf(recordKey, takeoverResponse.Header.Revision, takeoverRecord, existing.Lease));
            }
        }

        throw new EtcdContentionException($"Idempotency record {recordKey} kept changing for {MaxCasAttempts} attempts.");
    }

    /// <summary>A first attempt without a claim (no write): for a handler whose own transaction can create the key's
    /// record. The handler reads <see cref="RecordRead"/> with what it reads anyway and goes on only when the key has
    /// no record; then <see cref="AddCompletion"/> with this claim (<see cref="IdempotencyClaim.IsUnclaimed"/>, mod
    /// revision 0: etcd compares an absent key's revisions as 0) creates the completed record in the handler's
    /// transaction only if there still is none, so a request that raced it makes the transaction fail, never run twice.
    /// One Raft entry per request instead of two (claim, then completion).</summary>
    public async Task<IdempotencyClaim> UnclaimedAsync(string scope, IdempotencyKey key, string fingerprint, CancellationToken cancellationToken)
    {
        var recordKey = RecordKey(scope, key);
        var lease = await LeaseForNowAsync(cancellationToken);
        return new IdempotencyClaim(recordKey, ModRevision: 0, fingerprint, time.GetUtcNow(), lease);
    }

    /// <summary>The read of the key's record, for a handler that reads other keys in the same transaction (see
    /// <see cref="UnclaimedAsync"/>): its answer holds a record when the key is used already.</summary>
    public static RequestOp RecordRead(IdempotencyClaim claim)
    {
        ArgumentNullException.ThrowIfNull(claim);
        return EtcdBytes.Get(claim.RecordKey);
    }

    /// <summary>What <see cref="BeginAsync"/> would answer, read without writing (no Raft proposal): null when the key
    /// is free to claim (no record, or a claim that lapsed or was released) — then call <see cref="BeginAsync"/>.
    /// For requests waiting on another one with the same key.</summary>
    public async Task<IdempotencyBegin?> PeekAsync(string scope, IdempotencyKey key, string fingerprint, CancellationToken cancellationToken)
    {
        var recordKey = RecordKey(scope, key);
        var read = new RangeRequest { Key = EtcdBytes.Key(recordKey) };
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(read, cancellationToken: token), cancellationToken);
        var existing = response.Kvs.FirstOrDefault();
        return existing is null ? null : Judge(recordKey, Deserialize(existing.Value), fingerprint, time.GetUtcNow());
    }

    /// <summary>The answer an existing record gives to a request, or null when the request may claim it.</summary>
    private static IdempotencyBegin? Judge(string recordKey, IdempotencyRecord record, string fingerprint, DateTimeOffset now)
    {
        if (!string.Equals(record.Fingerprint, fingerprint, StringComparison.Ordinal))
        {
            // Also for a released claim: the key's operation id may already name an operation made from that body.
            return new IdempotencyBegin.FingerprintMismatch(record.Body);
        }

        if (record.State == IdempotencyState.Completed)
        {
            return new IdempotencyBegin.Replay(record.StatusCode!.Value, record.Body ?? string.Empty, record.ContentType);
        }

        return record.LockedUntil > now ? new IdempotencyBegin.InProgress(record.LockedUntil.Value - now, recordKey) : null;
    }

    /// <summary>Stores the final response. False if the claim was lost (it timed out and another request took over).</summary>
    public async Task<bool> CompleteAsync(
        IdempotencyClaim claim, int statusCode, string body, string? contentType, CancellationToken cancellationToken)
    {
        var request = new TxnRequest();
        AddCompletion(request, claim, statusCode, body, contentType);
        try
        {
            return (await TxnAsync(request, cancellationToken)).Succeeded;
        }
        catch (RpcException exception) when (IsLeaseNotFound(exception))
        {
            return false; // The record's lease ended, and the record with it: the claim is lost.
        }
    }

    /// <summary>Adds to <paramref name="request"/> what <see cref="CompleteAsync"/> writes (a compare that the claim is
    /// still held, and the final response), so that an operation's own transaction can store its answer: one Raft
    /// entry instead of two. The transaction then fails when the claim was lost, and a lost lease fails it with an
    /// error <see cref="IsLeaseNotFound"/> recognises.</summary>
    public static void AddCompletion(TxnRequest request, IdempotencyClaim claim, int statusCode, string body, string? contentType)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(claim);
        // Written from the claim, without reading the record first: the compare proves it is still this claim, so its
        // creation and lease are the claim's (one etcd read fewer per request).
        var record = new IdempotencyRecord(claim.Fingerprint, IdempotencyState.Completed, statusCode, body, contentType, claim.CreatedAt, null);
        request.Compare.Add(EtcdBytes.ModRevisionIs(claim.RecordKey, claim.ModRevision));
        request.Success.Add(EtcdBytes.Put(claim.RecordKey, Serialize(record), claim.Lease));
    }

    /// <summary>Gives the key back so that a retry may run again: only for requests that changed nothing, or whose
    /// retry repeats the same operation. The record stays (with its creation, body fingerprint and lease), marked
    /// free: a retry within the window reaches the same operation id, and a different body is still refused — deleting
    /// it would let the retry start a second operation.</summary>
    public async Task ReleaseAsync(IdempotencyClaim claim, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(claim);
        if (claim.IsUnclaimed)
        {
            return; // nothing was written to give back
        }

        var released = new IdempotencyRecord(claim.Fingerprint, IdempotencyState.InProgress, null, null, null, claim.CreatedAt, ReleasedLockEnd);
        var request = new TxnRequest();
        request.Compare.Add(EtcdBytes.ModRevisionIs(claim.RecordKey, claim.ModRevision));
        request.Success.Add(EtcdBytes.Put(claim.RecordKey, Serialize(released), claim.Lease));
        // A release usually runs because etcd just failed the request: retried (bounded) through a leader election,
        // because a claim left behind answers the client's retries with 409 until InProgressTimeout (measured: 60 s
        // of 409s after an etcd leader kill without this). The compare makes a repeated release harmless.
        var delay = ReleaseRetryDelay;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await TxnAsync(request, cancellationToken);
                return;
            }
            catch (RpcException exception) when (IsLeaseNotFound(exception))
            {
                return; // The record's lease was revoked, and the record with it: nothing is left to release.
            }
            catch (Exception exception) when (exception is RpcException or OperationCanceledException
                                              && attempt < MaxReleaseAttempts && !cancellationToken.IsCancellationRequested)
            {
                await Task.Delay(delay, time, cancellationToken);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxReleaseRetryDelay.Ticks));
            }
        }
    }

    /// <summary>The etcd key of a scope's Idempotency-Key record.</summary>
    public string RecordKey(string scope, IdempotencyKey key)
    {
        ArgumentException.ThrowIfNullOrEmpty(scope);
        ArgumentNullException.ThrowIfNull(key);
        // Hash the client's key: it may hold '/' and other characters that must not shape our key space.
        var digest = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key.Value)));
        return $"{prefix}{Convert.ToHexString(Encoding.UTF8.GetBytes(scope))}/{digest}";
    }

    private static IdempotencyClaim ClaimOf(string recordKey, long modRevision, IdempotencyRecord record, long lease) =>
        new(recordKey, modRevision, record.Fingerprint, record.CreatedAt, lease);

    /// <summary>Whether etcd refused a write because its lease no longer exists (a claim's record is gone with it).</summary>
    public static bool IsLeaseNotFound(RpcException exception) =>
        exception.Status.Detail.Contains("lease not found", StringComparison.OrdinalIgnoreCase);

    /// <summary>Creates the record unless one exists: the create's response (a failed one carries the existing record).</summary>
    private async Task<(TxnResponse? Response, IdempotencyRecord Claim, long Lease)> CreateAsync(
        string recordKey, IdempotencyRecord claim, CancellationToken cancellationToken)
    {
        var lease = await LeaseForNowAsync(cancellationToken);
        var request = new TxnRequest();
        request.Compare.Add(EtcdBytes.CreateRevisionIs(recordKey, 0));
        request.Success.Add(EtcdBytes.Put(recordKey, Serialize(claim), lease));
        request.Failure.Add(EtcdBytes.Get(recordKey));
        return (await TxnAsync(request, cancellationToken), claim, lease);
    }

    private async Task<long> LeaseForNowAsync(CancellationToken cancellationToken)
    {
        var bucket = time.GetUtcNow().Ticks / bucketWidth.Ticks;
        var lease = leasesByBucket.GetOrAdd(bucket, _ => new Lazy<Task<long>>(GrantBucketLeaseAsync));
        try
        {
            return await lease.Value.WaitAsync(cancellationToken);
        }
        catch (RpcException)
        {
            leasesByBucket.TryRemove(bucket, out _);
            throw;
        }
        finally
        {
            foreach (var old in leasesByBucket.Keys.Where(other => other < bucket))
            {
                leasesByBucket.TryRemove(old, out _);
            }
        }
    }

    private async Task<long> GrantBucketLeaseAsync()
    {
        var ttl = (long)Math.Ceiling((retention + bucketWidth).TotalSeconds);
        var response = await EtcdConnection.CallAsync(
            token => etcd.Leases.LeaseGrantAsync(new LeaseGrantRequest { TTL = ttl }, cancellationToken: token), CancellationToken.None);
        return response.ID;
    }

    private Task<TxnResponse> TxnAsync(TxnRequest request, CancellationToken cancellationToken) =>
        EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);

    private static ByteString Serialize(IdempotencyRecord record) =>
        ByteString.CopyFrom(JsonSerializer.SerializeToUtf8Bytes(record, IdempotencyJson.Default.IdempotencyRecord));

    private static IdempotencyRecord Deserialize(ByteString value) =>
        JsonSerializer.Deserialize(value.Span, IdempotencyJson.Default.IdempotencyRecord)
        ?? throw new InvalidDataException("Empty idempotency record.");
}

public enum IdempotencyState
{
    InProgress,
    Completed,
}

/// <summary>What etcd holds for one Idempotency-Key. A claim that was released is <see cref="IdempotencyState.InProgress"/>
/// with its lock long ended (so a replica of the previous version reads it as a lapsed claim it may take over).</summary>
public sealed record IdempotencyRecord(
    string Fingerprint,
    IdempotencyState State,
    int? StatusCode,
    string? Body,
    string? ContentType,
    DateTimeOffset CreatedAt,
    DateTimeOffset? LockedUntil);

/// <summary>Proof that this request owns the key: the revision of the in-progress record it wrote, and what a release
/// keeps of it (its creation and lease).</summary>
public sealed record IdempotencyClaim(string RecordKey, long ModRevision, string Fingerprint, DateTimeOffset CreatedAt, long Lease)
{
    /// <summary>Not a claim yet (<see cref="IdempotencyStore.UnclaimedAsync"/>): nothing was written, nothing is to be
    /// released, and completing it creates the record only while the key has none.</summary>
    public bool IsUnclaimed => ModRevision == 0;
}

/// <summary>The outcomes of <see cref="IdempotencyStore.BeginAsync"/>.</summary>
public abstract record IdempotencyBegin
{
    private IdempotencyBegin()
    {
    }

    /// <summary>This request runs; finish with Complete or Release.</summary>
    public sealed record Started(IdempotencyClaim Claim) : IdempotencyBegin;

    /// <summary>Already done: send this response again, byte for byte.</summary>
    public sealed record Replay(int StatusCode, string Body, string? ContentType) : IdempotencyBegin;

    /// <summary>Another request with this key is running (its record at <paramref name="RecordKey"/>): wait for the
    /// record to change, or ask the client to retry after a while.</summary>
    public sealed record InProgress(TimeSpan RetryAfter, string RecordKey) : IdempotencyBegin;

    /// <summary>The key was used with another request: 422 idempotency-key-reuse. <paramref name="OtherBody"/>: that
    /// request's stored answer (null while it runs or once released), for a caller that must tell what used the key.</summary>
    public sealed record FingerprintMismatch(string? OtherBody = null) : IdempotencyBegin;
}

[JsonSourceGenerationOptions(UseStringEnumConverter = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(IdempotencyRecord))]
internal sealed partial class IdempotencyJson : JsonSerializerContext;

using System.Collections.Concurrent;
using System.Globalization;
using Etcdserverpb;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Payments.Etcd;

namespace Payments.Merchants;

public sealed partial class MerchantStore
{
    /// <summary>Looked-up keys kept in memory; past it the cache starts over.</summary>
    public const int MaxCachedKeys = 10_000;

    /// <summary>Unknown keys remembered (by hash) at most; past it that cache starts over.</summary>
    public const int MaxUnknownKeys = 10_000;

    /// <summary>Usage timestamps written per flush at most (the rest wait for the next flush).</summary>
    public const int MaxUsageWritesPerFlush = 1_000;

    /// <summary>How long a key found unknown is answered as unknown without asking etcd again: a client hammering with
    /// a wrong or stale key costs one linearizable read per window, not one per request (issue 12). A key is random
    /// and 256 bits long, so none is looked up before it is issued; the window only delays a record restored by hand.</summary>
    public static readonly TimeSpan UnknownKeyWindow = TimeSpan.FromSeconds(30);

    /// <summary>How long a cached key is trusted while the invalidation watch is down: the bound on how late a
    /// revocation takes effect on a replica whose watch broke (with the watch up, it takes effect on delivery).</summary>
    public static readonly TimeSpan UnwatchedCacheWindow = TimeSpan.FromSeconds(1);

    /// <summary>How often usage ("last used") is written: at most once per key per interval per replica.</summary>
    public static readonly TimeSpan UsageFlushInterval = TimeSpan.FromMinutes(1);

    private readonly ConcurrentDictionary<string, CachedKey> keysByHash = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTimeOffset> unknownUntil = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTimeOffset> unflushedUse = new(StringComparer.Ordinal);
    private EtcdPrefixWatch? watch;
    private long invalidations;

    /// <summary>The principal a presented key stands for, or null: unknown, revoked, past its rotation overlap, or of
    /// another mode than this deployment's.</summary>
    public async Task<ApiPrincipal?> AuthenticateAsync(string apiKey, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(apiKey);
        if (ApiKeyModes.Of(apiKey) is { } keyMode && keyMode != Mode)
        {
            return null;
        }

        var hash = Hash(apiKey);
        var now = clock.GetUtcNow();
        if (keysByHash.TryGetValue(hash, out var cached) && (watch?.IsWatching == true || now - cached.FetchedAt < UnwatchedCacheWindow))
        {
            return Use(hash, cached.Record, now);
        }

        if (unknownUntil.TryGetValue(hash, out var until) && now < until)
        {
            return null;
        }

        // An event delivered while the read is under way may concern this very key: cache only if none came.
        var seen = Interlocked.Read(ref invalidations);
        var stored = await GetAsync(KeyRecordKey(hash), cancellationToken);
        var record = stored is null ? null : DecodeKey(stored.Value);
        if (record is null || record.IsExpired(now))
        {
            keysByHash.TryRemove(hash, out _);
            Remember(unknownUntil, MaxUnknownKeys, hash, now + UnknownKeyWindow);
            return null;
        }

        unknownUntil.TryRemove(hash, out _);
        if (Interlocked.Read(ref invalidations) == seen)
        {
            Remember(keysByHash, MaxCachedKeys, hash, new CachedKey(record, now));
        }

        return Use(hash, record, now);
    }

    /// <summary>True when this replica holds the key in its cache: authenticating it costs no etcd read.</summary>
    public bool IsCached(string apiKey) => keysByHash.ContainsKey(Hash(apiKey));

    /// <summary>The merchant a key belongs to, or null (see <see cref="AuthenticateAsync"/>).</summary>
    public async Task<string?> MerchantForKeyAsync(string apiKey, CancellationToken cancellationToken) =>
        (await AuthenticateAsync(apiKey, cancellationToken))?.MerchantId;

    /// <summary>Keeps the key cache true: an etcd watch on the key records evicts each changed key (revoked, rotated,
    /// issued) as the change commits, and empties the cache whenever the watch (re)starts. Runs until cancelled.</summary>
    public Task RunInvalidationAsync(ILogger logger, CancellationToken cancellationToken)
    {
        // The wall clock for the watch's backoff: a test's frozen clock must not stall reconnecting.
        watch = new EtcdPrefixWatch(etcd, root + "merchant-keys/", logger, TimeProvider.System);
        return watch.RunAsync(
            onStart: () =>
            {
                Interlocked.Increment(ref invalidations);
                keysByHash.Clear();
            },
            onChange: (hash, deleted) =>
            {
                Interlocked.Increment(ref invalidations);
                keysByHash.TryRemove(hash, out _);
                unknownUntil.TryRemove(hash, out _);
            },
            cancellationToken);
    }

    /// <summary>Writes when keys were last used (each only while its record exists: a flush never revives a purged key's
    /// trail; a revoked key's record stays, so its last use before the revocation may still be written). Bounded by
    /// <see cref="MaxUsageWritesPerFlush"/>.</summary>
    public async Task FlushUsageAsync(CancellationToken cancellationToken)
    {
        foreach (var (hash, usedAt) in unflushedUse.Take(MaxUsageWritesPerFlush).ToArray())
        {
            var request = new TxnRequest();
            request.Compare.Add(new Compare
            {
                Key = EtcdBytes.Key(KeyRecordKey(hash)), Target = Compare.Types.CompareTarget.Version,
                Result = Compare.Types.CompareResult.Greater, Version = 0,
            });
            request.Success.Add(EtcdBytes.Put(UsageKey(hash), ByteString.CopyFromUtf8(usedAt.ToString("O", CultureInfo.InvariantCulture))));
            await TxnAsync(request, cancellationToken);
            unflushedUse.TryRemove(new KeyValuePair<string, DateTimeOffset>(hash, usedAt));
        }
    }

    private ApiPrincipal? Use(string hash, ApiKeyRecord record, DateTimeOffset now)
    {
        if (record.IsExpired(now))
        {
            keysByHash.TryRemove(hash, out _);
            return null;
        }

        if (unflushedUse.Count < MaxCachedKeys)
        {
            unflushedUse[hash] = now;
        }

        return new ApiPrincipal(record.MerchantId, record.KeyId, record.Scopes, record.Holder);
    }

    /// <summary>Bounded: a full cache starts over rather than grow (a flood of distinct keys cannot exhaust memory).</summary>
    private static void Remember<T>(ConcurrentDictionary<string, T> cache, int bound, string hash, T value)
    {
        if (cache.Count >= bound)
        {
            cache.Clear();
        }

        cache[hash] = value;
    }

    private sealed record CachedKey(ApiKeyRecord Record, DateTimeOffset FetchedAt);
}

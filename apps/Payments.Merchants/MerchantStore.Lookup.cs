using System.Collections.Concurrent;
using System.Globalization;
using Etcdserverpb;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Payments.Etcd;

namespace Payments.Merchants;

public sealed partial class MerchantStore
{
    /// <summary>Live keys held in memory at most: the whole of them while there are no more (the mirror, see
    /// <see cref="RunInvalidationAsync"/>); past it the replica keeps only keys it has looked up, and the cache starts
    /// over when full. About 630 bytes each (the `key-mirror` benchmark): 32 MB at the bound.</summary>
    public const int MaxCachedKeys = 50_000;

    /// <summary>Distinct scope lists shared at most (<see cref="Shared"/>); six scopes make few in practice.</summary>
    private const int MaxScopeLists = 256;

    /// <summary>Key records read per page (the mirror's load, the legacy merchants' scan).</summary>
    private const int KeyRecordPage = 1_000;

    /// <summary>Pages of key records one load reads at most (revoked keys keep their records, so records can outnumber
    /// live keys); past it the load counts as incomplete, as past <see cref="MaxCachedKeys"/>.</summary>
    private const int MaxKeyRecordPages = 1_000;

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

    private readonly Lock mirrorGate = new(); // a lookup's insert, a change's application and a load's swap: one at a time
    private volatile ConcurrentDictionary<string, CachedKey> keysByHash = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTimeOffset> unknownUntil = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTimeOffset> unflushedUse = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, IReadOnlyList<string>> scopeLists = new(StringComparer.Ordinal);
    private EtcdPrefixWatch? watch;
    private long invalidations;
    private int mirroring; // 1: keysByHash holds every live key as of the last load, plus what the watch delivered since
    private int loadedOnce;

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
        var record = stored is null ? null : Readable(stored.Value, hash, logger: null);
        if (record is null || record.IsExpired(now))
        {
            keysByHash.TryRemove(hash, out _);
            Remember(unknownUntil, MaxUnknownKeys, hash, now + UnknownKeyWindow);
            return null;
        }

        unknownUntil.TryRemove(hash, out _);
        lock (mirrorGate)
        {
            // Under the gate: a change applied (or a load swapped in) between this check and the insert would be undone
            // by it — a revoked key back in the cache, for as long as the watch runs.
            if (Interlocked.Read(ref invalidations) == seen)
            {
                if (keysByHash.Count >= MaxCachedKeys)
                {
                    Volatile.Write(ref mirroring, 0); // what follows clears the cache: it holds every key no longer
                }

                Remember(keysByHash, MaxCachedKeys, hash, new CachedKey(Shared(record), now));
            }
        }

        return Use(hash, record, now);
    }

    /// <summary>True when this replica holds the key in its cache: authenticating it costs no etcd read. With the mirror
    /// loaded, every live key is held: a key not held was issued in the last moments, or is not one.</summary>
    public bool IsCached(string apiKey) => keysByHash.ContainsKey(Hash(apiKey));

    /// <summary>True once the key records have been read in full (or found past <see cref="MaxCachedKeys"/>): a replica
    /// is ready from then on, so after its restart valid keys are known before any request comes.</summary>
    public bool KeysLoaded => Volatile.Read(ref loadedOnce) == 1;

    /// <summary>True while this replica holds every live key (<see cref="RunInvalidationAsync"/>).</summary>
    public bool IsMirroring => Volatile.Read(ref mirroring) == 1 && watch?.IsWatching == true;

    /// <summary>The merchant a key belongs to, or null (see <see cref="AuthenticateAsync"/>).</summary>
    public async Task<string?> MerchantForKeyAsync(string apiKey, CancellationToken cancellationToken) =>
        (await AuthenticateAsync(apiKey, cancellationToken))?.MerchantId;

    /// <summary>Keeps the key cache true, and whole: before each (re)start of an etcd watch on the key records, every
    /// live key is read into memory (up to <see cref="MaxCachedKeys"/>), and the watch, started right after that read,
    /// applies each change as it commits — issued, rotated, revoked. So a valid key never needs a lookup, and never meets
    /// the budget for requests without a valid key (<c>ApiKeyMiddleware</c>): a flood of made-up keys from the address
    /// every client shares behind an ingress cannot lock valid keys out, after a restart either. Past the bound the
    /// watch only evicts, and keys are looked up and cached as they come. Runs until cancelled.</summary>
    public Task RunInvalidationAsync(ILogger logger, CancellationToken cancellationToken)
    {
        // The wall clock for the watch's backoff: a test's frozen clock must not stall reconnecting.
        watch = new EtcdPrefixWatch(etcd, root + "merchant-keys/", logger, TimeProvider.System);
        return watch.RunMirrorAsync(token => LoadKeysAsync(logger, token), (hash, value, _) => Apply(hash, value, logger), cancellationToken);
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
            try
            {
                await TxnAsync(request, cancellationToken);
            }
            catch (Payments.Ledger.Contracts.RegionNotWritableException)
            {
                return; // the standby's: kept (one entry per key) until its region writes, or this replica stops
            }

            unflushedUse.TryRemove(new KeyValuePair<string, DateTimeOffset>(hash, usedAt));
        }
    }

    /// <summary>Reads every key record, a page at a time at one revision (what the watch then starts after), into a new
    /// cache that replaces the one in use only when complete: while it loads, the keys held before still answer (a
    /// reload after a broken watch must not send every valid key to the bad-key budget). Live keys only, since a key not
    /// held reads as unknown anyway.</summary>
    private async Task<long> LoadKeysAsync(ILogger logger, CancellationToken cancellationToken)
    {
        var loaded = new ConcurrentDictionary<string, CachedKey>(StringComparer.Ordinal);
        var legacy = new List<(string Hash, long Revision, string MerchantId)>();
        long revision = 0, read = 0;
        var whole = true;
        RangeResponse? last = null;
        await foreach (var page in KeyRecordPagesAsync(MaxKeyRecordPages, cancellationToken))
        {
            (last, revision) = (page, revision == 0 ? page.Header.Revision : revision);
            var now = clock.GetUtcNow();
            foreach (var (hash, value, modRevision) in page.Kvs.Select(kv => (HashOf(kv), kv.Value, kv.ModRevision)))
            {
                if (IsLegacy(value) && legacy.Count < MaxLegacyMigrationsPerLoad)
                {
                    legacy.Add((hash, modRevision, value.ToStringUtf8()));
                }

                if (Readable(value, hash, logger) is not { } record || record.IsExpired(now))
                {
                    continue;
                }

                whole = loaded.Count < MaxCachedKeys;
                if (!whole)
                {
                    LogPastTheBound(logger, MaxCachedKeys);
                    break;
                }

                loaded[hash] = new CachedKey(Shared(record), now);
            }

            read += page.Kvs.Count;
            if (!whole)
            {
                break;
            }
        }

        whole &= last is not { More: true }; // else stopped at the page bound: not every record was read

        lock (mirrorGate)
        {
            // A lookup that read before this load's revision must not add what it read to the new cache: the watch
            // starts after that revision and would never correct it.
            Interlocked.Increment(ref invalidations);
            keysByHash = loaded;
            Volatile.Write(ref mirroring, whole ? 1 : 0);
        }

        Volatile.Write(ref loadedOnce, 1);
        logger.LogDebug("Loaded {Live} live API keys of {Read} records at revision {Revision}", loaded.Count, read, revision);
        await MigrateLegacyKeysAsync(legacy, logger, cancellationToken); // written after this revision: the watch brings them
        return revision;
    }

    /// <summary>A change to a key record: the mirror takes the new state (a live key in, an ended one out); a cache that
    /// is not the mirror evicts the key, to be looked up again.</summary>
    private void Apply(string hash, ByteString? value, ILogger logger)
    {
        var record = value is null ? null : Readable(value, hash, logger);
        var now = clock.GetUtcNow();
        lock (mirrorGate)
        {
            Interlocked.Increment(ref invalidations);
            unknownUntil.TryRemove(hash, out _);
            var keys = keysByHash;
            if (Volatile.Read(ref mirroring) == 1 && record is not null && !record.IsExpired(now))
            {
                if (keys.Count < MaxCachedKeys || keys.ContainsKey(hash))
                {
                    keys[hash] = new CachedKey(Shared(record), now);
                    return;
                }

                Volatile.Write(ref mirroring, 0);
                LogPastTheBound(logger, MaxCachedKeys);
            }

            keys.TryRemove(hash, out _);
        }
    }

    /// <summary>Every key record, <see cref="KeyRecordPage"/> a page, all at the first page's revision (one snapshot),
    /// at most <paramref name="maxPages"/> pages: the last page returned says whether more followed.</summary>
    private async IAsyncEnumerable<RangeResponse> KeyRecordPagesAsync(
        int maxPages, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var keyPrefix = KeyRecordKey(string.Empty);
        var request = new RangeRequest { Key = EtcdBytes.Key(keyPrefix), RangeEnd = EtcdBytes.PrefixEnd(keyPrefix), Limit = KeyRecordPage };
        for (var pages = 0; pages < maxPages; pages++)
        {
            var page = await EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(request, cancellationToken: token), cancellationToken);
            yield return page;
            if (!page.More || page.Kvs.Count == 0)
            {
                yield break;
            }

            request.Revision = request.Revision == 0 ? page.Header.Revision : request.Revision;
            request.Key = EtcdBytes.Key(page.Kvs[^1].Key.ToStringUtf8() + "\0");
        }
    }

    private string HashOf(Mvccpb.KeyValue kv) => kv.Key.ToStringUtf8()[KeyRecordKey(string.Empty).Length..];

    [LoggerMessage(Level = LogLevel.Warning, Message = "More than {Bound} live API keys: this replica looks keys up as they come instead of holding them all")]
    private static partial void LogPastTheBound(ILogger logger, int bound);

    /// <summary>A record, or null (logged) when it cannot be read: one corrupt record must not stop the watch that keeps
    /// every other key true, nor answer a request with 500.</summary>
    private static ApiKeyRecord? Readable(ByteString value, string hash, ILogger? logger)
    {
        try
        {
            return DecodeKey(value);
        }
        catch (System.Text.Json.JsonException exception)
        {
            logger?.LogWarning(exception, "The record of API key {Hash} cannot be read; the key is refused", hash[..Math.Min(8, hash.Length)]);
            return null;
        }
    }

    /// <summary>The record with its scope list shared with every key that has the same scopes: tens of thousands of keys
    /// hold a handful of distinct lists.</summary>
    private ApiKeyRecord Shared(ApiKeyRecord record)
    {
        var scopes = string.Join(' ', record.Scopes);
        return scopeLists.TryGetValue(scopes, out var shared) || (scopeLists.Count < MaxScopeLists && scopeLists.TryAdd(scopes, shared = record.Scopes.ToArray()))
            ? record with { Scopes = shared! }
            : record;
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

using System.Collections.Concurrent;

namespace Payments.Ledger.Core.Storage;

/// <summary>The last account records (with their mod revisions) this process read or wrote: a hint, never the truth.</summary>
/// <remarks>A transfer evaluated against a cached record still writes with "the key is still at this revision" in its
/// transaction, so a stale entry costs one failed compare and a re-read, never a wrong balance. What it saves is the
/// read round trip on the common path: one etcd transaction per transfer.</remarks>
internal sealed class RecordCache
{
    /// <summary>Entries kept at most; past it the cache starts over (cheaper than LRU bookkeeping on every hit).</summary>
    public const int MaxEntries = 100_000;

    private readonly ConcurrentDictionary<string, StoredValue> entries = new(StringComparer.Ordinal);

    public bool TryGet(string key, out StoredValue value) => entries.TryGetValue(key, out value);

    public void Remember(string key, StoredValue value)
    {
        if (entries.Count >= MaxEntries)
        {
            entries.Clear();
        }

        // Never replace a newer revision with an older one read concurrently.
        entries.AddOrUpdate(key, value, (_, existing) => existing.ModRevision > value.ModRevision ? existing : value);
    }

    public void Forget(string key) => entries.TryRemove(key, out _);
}

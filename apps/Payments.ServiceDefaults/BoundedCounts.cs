namespace Payments.ServiceDefaults;

/// <summary>A count per key with a limit each: taken one at a time while under the limit, given back one at a time, a
/// key gone at zero — so the table holds only the keys counted now, not every key ever seen. Thread-safe. What a
/// merchant's waiting requests, a client address's connections and a merchant's owed webhook deliveries are counted by.</summary>
public sealed class BoundedCounts<TKey>(IEqualityComparer<TKey>? comparer = null)
    where TKey : notnull
{
    private readonly Dictionary<TKey, long> counts = new(comparer);

    /// <summary>Counts one more for <paramref name="key"/> if it has fewer than <paramref name="limit"/>.</summary>
    public bool TryTake(TKey key, long limit)
    {
        lock (counts)
        {
            var count = counts.GetValueOrDefault(key);
            if (count >= limit)
            {
                return false;
            }

            counts[key] = count + 1;
            return true;
        }
    }

    /// <summary>One fewer for <paramref name="key"/> (nothing if it has none counted).</summary>
    public void GiveBack(TKey key)
    {
        lock (counts)
        {
            if (counts.TryGetValue(key, out var count))
            {
                if (count > 1)
                {
                    counts[key] = count - 1;
                }
                else
                {
                    counts.Remove(key);
                }
            }
        }
    }

    public void Clear()
    {
        lock (counts)
        {
            counts.Clear();
        }
    }
}

namespace Payments.Api.Limits;

/// <summary>One turn at a time per key, a gate per key only while someone holds or awaits it: memory is bounded by the
/// requests in flight, not by the keys ever seen. Striped gates (a fixed number, chosen by the key's hash) bounded it
/// too, but made unrelated keys share turns: one merchant's burst of deposits kept every merchant whose counter shared
/// its stripe waiting, until their deposits were refused as busy.</summary>
public sealed class KeyedGates
{
    private readonly Lock gate = new();
    private readonly Dictionary<string, Entry> entries = new(StringComparer.Ordinal);

    /// <summary>Keys with a gate now (held or awaited).</summary>
    public int Count
    {
        get
        {
            lock (gate)
            {
                return entries.Count;
            }
        }
    }

    /// <summary>Waits, at most <paramref name="timeout"/>, for <paramref name="key"/>'s turn; the turn, to dispose when
    /// done, or null when the wait ran out.</summary>
    public async Task<IDisposable?> EnterAsync(string key, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        Entry entry;
        lock (gate)
        {
            if (!entries.TryGetValue(key, out entry!))
            {
                entry = new Entry();
                entries[key] = entry;
            }

            entry.Users++;
        }

        var entered = false;
        try
        {
            entered = await entry.Turn.WaitAsync(timeout, cancellationToken);
            return entered ? new Held(this, key, entry) : null;
        }
        finally
        {
            if (!entered)
            {
                Leave(key, entry, release: false);
            }
        }
    }

    /// <summary><see cref="EnterAsync"/>, or a 503 for the caller when the wait runs out: <paramref name="busy"/> says
    /// what was busy (an <see cref="Payments.Etcd.EtcdContentionException"/>, which the API answers 503, retry).</summary>
    public async Task<IDisposable> TurnAsync(string key, TimeSpan timeout, string busy, CancellationToken cancellationToken) =>
        await EnterAsync(key, timeout, cancellationToken)
        ?? throw new Payments.Etcd.EtcdContentionException($"{busy} is busy: no turn within {timeout.TotalSeconds} s.");

    private void Leave(string key, Entry entry, bool release)
    {
        if (release)
        {
            entry.Turn.Release();
        }

        lock (gate)
        {
            if (--entry.Users == 0)
            {
                entries.Remove(key);
                entry.Turn.Dispose(); // no one holds or awaits it: a later user makes a new one
            }
        }
    }

    private sealed class Entry
    {
        public SemaphoreSlim Turn { get; } = new(1, 1);

        public int Users { get; set; }
    }

    private sealed class Held(KeyedGates gates, string key, Entry entry) : IDisposable
    {
        private int disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref disposed, 1) == 0)
            {
                gates.Leave(key, entry, release: true);
            }
        }
    }
}

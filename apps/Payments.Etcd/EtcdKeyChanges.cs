using System.Collections.Concurrent;
using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace Payments.Etcd;

/// <summary>Where the requests of one replica wait for a key under a prefix to change: one etcd watch on the prefix
/// wakes the waiters of a key when it changes, instead of each waiter asking etcd again and again. Every (re)start of
/// the watch wakes everyone (events between two streams are not replayed), and a waiter re-reads on its own at an
/// interval of its choosing besides, so a lost event delays a waiter, never hangs it.</summary>
/// <remarks>Used for duplicates of an Idempotency-Key waiting for the first request, and for clients waiting for a
/// payment's status to change (<c>GET /v1/payments/{id}?wait=</c>).</remarks>
/// <param name="remember">Which keys' last value (as the watch delivered it) to keep for <see cref="Latest"/>, at most
/// <paramref name="maxWaiters"/> of them; null: none.</param>
/// <param name="end">Where the watched keys end (exclusive, under the prefix), or null for the whole prefix: keys from
/// it on are not watched, and their waiters are woken only by restarts (see <see cref="EtcdPrefixWatch.End"/>).</param>
public sealed class EtcdKeyChanges(EtcdConnection etcd, string prefix, ILogger logger, int maxWaiters, Func<string, bool>? remember = null, string? end = null)
{
    private readonly ConcurrentDictionary<string, TaskCompletionSource<ByteString?>> changes = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ByteString> latest = new(StringComparer.Ordinal);
    private int waiters;

    /// <summary>The prefix watched; keys passed to <see cref="NextChangeAsync"/> are full keys under it.</summary>
    public string Prefix => prefix;

    /// <summary>Requests that may wait at once; past it <see cref="TryEnter"/> refuses.</summary>
    public int MaxWaiters => maxWaiters;

    /// <summary>Requests waiting now.</summary>
    public int Waiting => Volatile.Read(ref waiters);

    /// <summary>A place among the waiters, or null when <see cref="MaxWaiters"/> wait already; dispose it to leave.</summary>
    public IDisposable? TryEnter()
    {
        if (Interlocked.Increment(ref waiters) <= maxWaiters)
        {
            return new Place(this);
        }

        Interlocked.Decrement(ref waiters);
        return null;
    }

    /// <summary>Completes at the next change of <paramref name="key"/> with its new value (null: deleted, or the watch
    /// restarted and changes may have been missed — read again). Take it before reading the key, so a change right
    /// after the read is not missed.</summary>
    public Task<ByteString?> NextChangeAsync(string key)
    {
        if (changes.Count >= maxWaiters)
        {
            // Signals left by waiters that gave up on keys that never changed since: wake everyone (they re-read)
            // rather than keep them without bound.
            WakeAll();
        }

        return changes.GetOrAdd(key, _ => new TaskCompletionSource<ByteString?>(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
    }

    /// <summary>The value of <paramref name="key"/> as the watch last delivered it, if remembered: it may lag behind
    /// etcd, never run ahead of it. Take <see cref="NextChangeAsync"/> first: a change the value here misses then wakes
    /// the waiter (the value is stored before waiters are woken).</summary>
    public ByteString? Latest(string key) => latest.TryGetValue(key, out var value) ? value : null;

    /// <summary>Watches the prefix until <paramref name="cancellationToken"/> ends (reopening a broken watch).</summary>
    public Task RunAsync(CancellationToken cancellationToken) =>
        new EtcdPrefixWatch(etcd, prefix, logger) { End = end }.RunWithValuesAsync(Restarted, (key, value) => Changed(prefix + key, value), cancellationToken);

    /// <summary>A (re)started watch: changes in between are not replayed, so what was remembered may be stale.</summary>
    private void Restarted()
    {
        latest.Clear();
        WakeAll();
    }

    private void Changed(string key, ByteString? value)
    {
        if (remember?.Invoke(key) == true)
        {
            if (value is null || value.IsEmpty)
            {
                latest.TryRemove(key, out _);
            }
            else
            {
                if (latest.Count >= maxWaiters)
                {
                    latest.Clear(); // a hint: starting over is cheaper than bookkeeping which to drop
                }

                latest[key] = value;
            }
        }

        Wake(key, value); // after the store above: a waiter that registers later finds the new value there
    }

    private void Wake(string key, ByteString? value)
    {
        if (changes.TryRemove(key, out var change))
        {
            change.TrySetResult(value);
        }
    }

    private void WakeAll()
    {
        foreach (var key in changes.Keys)
        {
            Wake(key, null);
        }
    }

    private sealed class Place(EtcdKeyChanges owner) : IDisposable
    {
        private int left;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref left, 1) == 0)
            {
                Interlocked.Decrement(ref owner.waiters);
            }
        }
    }
}

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
/// <param name="idleWatch">Null: the watch runs all the time. Otherwise it runs only while requests wait, and stops
/// once none has waited for this long — for prefixes written on every payment whose waiters are rare (duplicates of
/// a request still in flight): etcd then sends each replica nothing. A waiter that comes while it is stopped starts it,
/// and the start wakes every waiter to read again, so a change between its read and the start is not missed.</param>
/// <param name="time">The clock of the idle stop (the system's when null).</param>
public sealed class EtcdKeyChanges(
    EtcdConnection etcd, string prefix, ILogger logger, int maxWaiters, Func<string, bool>? remember = null, string? end = null,
    TimeSpan? idleWatch = null, TimeProvider? time = null)
{
    private readonly ConcurrentDictionary<string, TaskCompletionSource<ByteString?>> changes = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ByteString> latest = new(StringComparer.Ordinal);
    private readonly TimeSpan? idleWatch = idleWatch is null || idleWatch > TimeSpan.Zero
        ? idleWatch
        : throw new ArgumentOutOfRangeException(nameof(idleWatch), idleWatch, "An idle stop must be longer than zero.");

    private TaskCompletionSource wanted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int waiters;
    private long entries;
    private int watching;

    /// <summary>Starts of the watch so far (each a stream, and a wake-up of every waiter).</summary>
    public long WatchStarts => Interlocked.Read(ref watchStarts);

    /// <summary>True while the watch runs (always, without an idle stop, once <see cref="RunAsync"/> began).</summary>
    public bool IsWatching => Volatile.Read(ref watching) == 1;

    private long watchStarts;

    /// <summary>The prefix watched; keys passed to <see cref="NextChangeAsync"/> are full keys under it.</summary>
    public string Prefix => prefix;

    /// <summary>Requests that may wait at once; past it <see cref="TryEnter"/> refuses.</summary>
    public int MaxWaiters => maxWaiters;

    /// <summary>Requests waiting now.</summary>
    public int Waiting => Volatile.Read(ref waiters);

    /// <summary>Keys with a change signal held (taken by <see cref="NextChangeAsync"/>, not yet changed): at most
    /// <see cref="MaxWaiters"/> and then all woken.</summary>
    public int SignalsHeld => changes.Count;

    /// <summary>A place among the waiters, or null when <see cref="MaxWaiters"/> wait already; dispose it to leave.</summary>
    public IDisposable? TryEnter()
    {
        if (Interlocked.Increment(ref waiters) <= maxWaiters)
        {
            Interlocked.Increment(ref entries);
            Volatile.Read(ref wanted).TrySetResult(); // starts a stopped watch
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

    /// <summary>Watches the prefix until <paramref name="cancellationToken"/> ends (reopening a broken watch), or, with
    /// an idle stop, whenever requests wait.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        if (idleWatch is not { } idle)
        {
            await WatchAsync(cancellationToken);
            return;
        }

        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Volatile.Read(ref wanted).Task.WaitAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            await WatchWhileWaitedAsync(idle, cancellationToken);
        }
    }

    /// <summary>One session of an idle-stopped watch: runs it until nobody has waited for <paramref name="idle"/>.</summary>
    private async Task WatchWhileWaitedAsync(TimeSpan idle, CancellationToken cancellationToken)
    {
        using var session = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var watch = WatchAsync(session.Token);
        var failedOnItsOwn = false;
        try
        {
            var seen = Interlocked.Read(ref entries) - 1; // at least one idle period
            while (!Idle(seen))
            {
                seen = Interlocked.Read(ref entries);
                await Task.WhenAny(watch, Task.Delay(idle, time ?? TimeProvider.System, cancellationToken));
                cancellationToken.ThrowIfCancellationRequested();
                if (watch.IsCompleted)
                {
                    failedOnItsOwn = true; // it ends only by failing: passed on below, as without an idle stop
                    break;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // the app stops
        }
        finally
        {
            await session.CancelAsync();
            await EndedAsync(watch, failedOnItsOwn);
        }
    }

    /// <summary>Whether nobody waits and nobody came since <paramref name="seen"/> entries. A waiter that comes from
    /// the moment it is decided finds a fresh signal to complete, and the next start follows the stop; one that came
    /// just before is seen by the second look, and keeps this session going.</summary>
    private bool Idle(long seen)
    {
        if (Waiting > 0 || Interlocked.Read(ref entries) != seen)
        {
            return false;
        }

        Volatile.Write(ref wanted, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        return Waiting == 0 && Interlocked.Read(ref entries) == seen;
    }

    private async Task WatchAsync(CancellationToken cancellationToken)
    {
        Volatile.Write(ref watching, 1);
        try
        {
            await new EtcdPrefixWatch(etcd, prefix, logger) { End = end }.RunWithValuesAsync(Restarted, (key, value) => Changed(prefix + key, value), cancellationToken);
        }
        finally
        {
            Volatile.Write(ref watching, 0);
        }
    }

    /// <summary>Waits for a watch that was told to stop. Its stream ends with the cancellation, or with whatever broke
    /// it at that moment (a member restarting, no leader): nothing to pass on, since the next start reads afresh. Only a
    /// watch that had failed before it was told to stop passes its failure on.</summary>
    private async Task EndedAsync(Task watch, bool failedOnItsOwn)
    {
        try
        {
            await watch;
        }
        catch (Exception exception) when (!failedOnItsOwn)
        {
            logger.LogDebug(exception, "Watch on {Prefix} ended as it was stopped", prefix);
        }
    }

    /// <summary>A (re)started watch: changes in between are not replayed, so what was remembered may be stale.</summary>
    private void Restarted()
    {
        Interlocked.Increment(ref watchStarts);
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

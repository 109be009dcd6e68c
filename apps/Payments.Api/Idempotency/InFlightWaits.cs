using System.Collections.Concurrent;
using Payments.Etcd;

namespace Payments.Api.Idempotency;

/// <summary>Where requests wait for another request with the same Idempotency-Key to finish: one etcd watch per
/// replica on the idempotency records wakes the waiters of a record when it changes (completed, released, taken over,
/// expired), instead of each waiter asking etcd every few milliseconds. A waiter also re-reads on its own every
/// <see cref="RecheckInterval"/>, so an event lost between two watch streams delays it, never hangs it.</summary>
public sealed class InFlightWaits(IdempotencyStore store, EtcdConnection etcd, ILogger<InFlightWaits> logger) : BackgroundService
{
    /// <summary>Requests of this replica waiting at once, at most; past it a duplicate is answered 409 at once. Each
    /// holds a connection and a little memory for up to <see cref="IdempotentExecutor.MaxWaitForInFlight"/>.</summary>
    public const int MaxWaiters = 10_000;

    /// <summary>How often a waiter re-reads the record without an event (a read: no Raft proposal).</summary>
    public static readonly TimeSpan RecheckInterval = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<string, TaskCompletionSource> changes = new(StringComparer.Ordinal);
    private int waiters;

    /// <summary>Requests waiting now.</summary>
    public int Waiting => Volatile.Read(ref waiters);

    /// <summary>A place among the waiters, or null when <see cref="MaxWaiters"/> wait already; dispose it to leave.</summary>
    public IDisposable? TryEnter()
    {
        if (Interlocked.Increment(ref waiters) <= MaxWaiters)
        {
            return new Place(this);
        }

        Interlocked.Decrement(ref waiters);
        return null;
    }

    /// <summary>Completes at the next change of <paramref name="recordKey"/> (or when the watch restarts, when changes
    /// may have been missed). Take it before reading the record, so a change right after the read is not missed.</summary>
    public Task NextChangeAsync(string recordKey)
    {
        if (changes.Count >= MaxWaiters)
        {
            // Signals left by waiters that gave up on records that never changed since: wake everyone (they re-read)
            // rather than keep them without bound.
            WakeAll();
        }

        return changes.GetOrAdd(recordKey, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        new EtcdPrefixWatch(etcd, store.Prefix, logger).RunAsync(
            WakeAll, (key, _) => Wake(store.Prefix + key), stoppingToken);

    private void Wake(string recordKey)
    {
        if (changes.TryRemove(recordKey, out var change))
        {
            change.TrySetResult();
        }
    }

    private void WakeAll()
    {
        foreach (var recordKey in changes.Keys)
        {
            Wake(recordKey);
        }
    }

    private sealed class Place(InFlightWaits waits) : IDisposable
    {
        private int left;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref left, 1) == 0)
            {
                Interlocked.Decrement(ref waits.waiters);
            }
        }
    }
}

using Payments.Etcd;

namespace Payments.Api.Idempotency;

/// <summary>Where requests wait for another request with the same Idempotency-Key to finish: one etcd watch per
/// replica on the idempotency records, running while requests wait, wakes the waiters of a record when it changes
/// (completed, released, taken over, expired), instead of each waiter asking etcd every few milliseconds. A waiter
/// also re-reads on its own every <see cref="RecheckInterval"/>, so an event lost between two watch streams delays it,
/// never hangs it.</summary>
public sealed class InFlightWaits(IdempotencyStore store, EtcdConnection etcd, ILogger<InFlightWaits> logger) : BackgroundService
{
    /// <summary>Requests of this replica waiting at once, at most; past it a duplicate is answered 409 at once. Each
    /// holds a connection and a little memory for up to <see cref="IdempotentExecutor.MaxWaitForInFlight"/>.</summary>
    public const int MaxWaiters = 10_000;

    /// <summary>How often a waiter re-reads the record without an event (a read: no Raft proposal).</summary>
    public static readonly TimeSpan RecheckInterval = TimeSpan.FromSeconds(1);

    /// <summary>How long the watch runs on after the last waiter came. Only duplicates of a request still in flight
    /// wait, and they are rare, while every payment writes a record here: a watch that always ran was sent each of
    /// them, on every replica (two of the seven watch messages etcd sent per payment).</summary>
    public static readonly TimeSpan WatchIdleStop = TimeSpan.FromSeconds(30);

    private readonly EtcdKeyChanges changes = new(etcd, store.Prefix, logger, MaxWaiters, idleWatch: WatchIdleStop);

    /// <summary>Requests waiting now.</summary>
    public int Waiting => changes.Waiting;

    /// <summary>A place among the waiters, or null when <see cref="MaxWaiters"/> wait already; dispose it to leave.</summary>
    public IDisposable? TryEnter() => changes.TryEnter();

    /// <summary>Completes at the next change of <paramref name="recordKey"/> (or when the watch restarts, when changes
    /// may have been missed). Take it before reading the record, so a change right after the read is not missed.</summary>
    public Task NextChangeAsync(string recordKey) => changes.NextChangeAsync(recordKey);

    protected override Task ExecuteAsync(CancellationToken stoppingToken) => changes.RunAsync(stoppingToken);
}

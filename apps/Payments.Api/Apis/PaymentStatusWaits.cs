using Payments.Etcd;
using Payments.Orchestrator.Client.Records;

namespace Payments.Api.Apis;

/// <summary>Where <c>GET /v1/payments/{id}?wait=</c> waits: one etcd watch per replica on the payment records wakes
/// the requests waiting on a payment when its record changes — the saga writes every status a client sees into it —
/// so a client learns of the change as it happens, and a waiting request costs no read until then.</summary>
/// <param name="lifetime">Its stop ends every wait with the status as it stands: a wait held the replica's shutdown
/// (and the pod's drain) for up to 30 s; answered, the client asks again and reaches a replica that stays.</param>
public sealed class PaymentStatusWaits(
    PaymentRecordStore records, EtcdConnection etcd, TimeProvider time, ILogger<PaymentStatusWaits> logger, IHostApplicationLifetime? lifetime = null)
    : BackgroundService
{
    private readonly CancellationToken stopping = lifetime?.ApplicationStopping ?? CancellationToken.None;

    /// <summary>The longest wait a client may ask for: under the edge's and the ingress's 60 s read timeouts, and
    /// under the common 100 s of HTTP clients.</summary>
    public const int MaxWaitSeconds = 30;

    /// <summary>Requests of this replica waiting at once, at most; past it a request is answered at once with the
    /// current status (as if it had not asked to wait). Each holds a connection and a little memory.</summary>
    public const int MaxWaiters = 10_000;

    /// <summary>Requests of one merchant waiting at once on this replica, at most: a quarter of <see cref="MaxWaiters"/>,
    /// so one merchant's key (at 500 requests/s, 30 s each) cannot take every place and leave everyone else's waits
    /// answered at once. Past it, that merchant's requests are answered at once.</summary>
    public const int MaxWaitersPerMerchant = MaxWaiters / 4;

    private readonly Payments.ServiceDefaults.BoundedCounts<string> waitingPerMerchant = new(StringComparer.Ordinal);

    /// <summary>How often a waiter re-reads without an event: only a safety net, since every restart of the watch
    /// wakes every waiter.</summary>
    public static readonly TimeSpan RecheckInterval = TimeSpan.FromSeconds(5);

    /// <summary>Reads per request at most (each change of the record, or a recheck, costs one).</summary>
    public const int MaxReadsPerWait = 64;

    // Watches and remembers the records only: the markers under '~' (in flight, done, events — four changes per
    // payment) sort after every payment id, and a watch on the whole prefix was sent them all, on every replica. A wait
    // that starts from the status the watch last showed needs no read to begin.
    private readonly EtcdKeyChanges changes = new(etcd, records.Prefix, logger, MaxWaiters, remember: _ => true, end: records.Prefix + "~");

    /// <summary>Requests waiting now.</summary>
    public int Waiting => changes.Waiting;

    /// <summary>The payment as <paramref name="read"/> finds it once its status is other than
    /// <paramref name="from"/> (null: the status at the first read), or once it is terminal, or when
    /// <paramref name="wait"/> has passed; null when there is no such payment. A change that ends the wait is answered
    /// from the watch's event (the new record, as <paramref name="visible"/> lets the caller see it) without reading it
    /// again; any other wake-up reads. The first read is skipped when the watch last showed the payment (visible to
    /// the caller) in <paramref name="from"/>, unfinished: the client knows that status already, and what ends the
    /// wait is a change the watch delivers, or a read (a recheck, the end of the wait) — never the remembered value.</summary>
    /// <param name="merchant">Whose request this is (<see cref="MaxWaitersPerMerchant"/>); null: not counted.</param>
    /// <param name="waiting">Called once, when the request, holding one of the merchant's places and one of the
    /// replica's, begins to wait for a change (the request's place among those in flight is then given back: these
    /// bounds hold it). A request that only reads — no place free, the payment finished or not in etcd — never calls it.</param>
    public async Task<PaymentRecord?> WaitAsync(
        string paymentId, string? from, TimeSpan wait, Func<CancellationToken, Task<PaymentRecord?>> read,
        Func<PaymentRecord, PaymentRecord?> visible, CancellationToken cancellationToken, string? merchant = null, Action? waiting = null)
    {
        ArgumentNullException.ThrowIfNull(read);
        ArgumentNullException.ThrowIfNull(visible);
        var counted = wait > TimeSpan.Zero && merchant is not null && waitingPerMerchant.TryTake(merchant, MaxWaitersPerMerchant);
        try
        {
            return await WaitCoreAsync(paymentId, from, merchant is null || counted ? wait : TimeSpan.Zero, read, visible, cancellationToken, counted ? waiting : null);
        }
        finally
        {
            if (counted)
            {
                waitingPerMerchant.GiveBack(merchant!);
            }
        }
    }

    private async Task<PaymentRecord?> WaitCoreAsync(
        string paymentId, string? from, TimeSpan wait, Func<CancellationToken, Task<PaymentRecord?>> read,
        Func<PaymentRecord, PaymentRecord?> visible, CancellationToken cancellationToken, Action? waiting)
    {
        var deadline = time.GetUtcNow() + wait;
        using var place = wait > TimeSpan.Zero && !stopping.IsCancellationRequested ? changes.TryEnter() : null;
        using var ends = place is null ? null : CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, stopping);
        PaymentRecord? current = null;
        for (var reads = 1; reads <= MaxReadsPerWait; reads++)
        {
            var change = place is null ? null : changes.NextChangeAsync(records.KeyOf(paymentId)); // before the read
            current = reads == 1 && change is not null && Seen(paymentId, from, visible) is { } seen ? seen : await read(cancellationToken);
            from ??= current?.Status;
            var remaining = deadline - time.GetUtcNow();
            if (change is null || current is null || current.IsTerminal || current.Status != from || remaining <= TimeSpan.Zero)
            {
                return current;
            }

            waiting?.Invoke();
            waiting = null;
            try
            {
                var changed = await change.WaitAsync(remaining < RecheckInterval ? remaining : RecheckInterval, time, ends!.Token);
                if (changed is { IsEmpty: false } && visible(PaymentRecordStore.FromUtf8(changed.Span)) is { } after && (after.IsTerminal || after.Status != from))
                {
                    return after;
                }
            }
            catch (TimeoutException)
            {
                // No event in time: read again (the recheck), or answer if the wait is over.
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                return current; // the replica stops: the status as last read, which the client asks about again elsewhere
            }
        }

        return current;
    }

    /// <summary>The record as the watch last showed it, when that is still <paramref name="from"/> and unfinished.</summary>
    private PaymentRecord? Seen(string paymentId, string? from, Func<PaymentRecord, PaymentRecord?> visible) =>
        from is not null && changes.Latest(records.KeyOf(paymentId)) is { } value
                         && visible(PaymentRecordStore.FromUtf8(value.Span)) is { IsTerminal: false } seen && seen.Status == from
            ? seen
            : null;

    /// <summary>Payments with a change signal held: for tests.</summary>
    internal int SignalsHeld => changes.SignalsHeld;

    /// <summary>Whether the watch has shown this payment's record (and it is remembered): for tests.</summary>
    internal bool HasSeen(string paymentId) => changes.Latest(records.KeyOf(paymentId)) is not null;

    protected override Task ExecuteAsync(CancellationToken stoppingToken) => changes.RunAsync(stoppingToken);
}

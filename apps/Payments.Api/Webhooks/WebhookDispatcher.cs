using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Payments.Etcd;
using Payments.Api.Regions;
using Payments.Etcd.Regions;
using Payments.Merchants;
using Payments.Orchestrator.Client.Records;
using Payments.Telemetry;

namespace Payments.Api.Webhooks;

/// <summary>Delivers payment events to merchants' endpoints: takes the outbox markers that record changes leave and
/// sends each event to the merchant's endpoints that want it, records what is still owed, retries it with exponential
/// backoff for <see cref="WebhookOptions.RetryFor"/>, and trims events older than their retention.</summary>
/// <remarks>Every API replica runs one; the one holding the dispatcher lock works, the others wait to take over (the
/// lock's lease ends 10 s after its holder dies). Its writes carry the lock's fence. In a two-region deployment the
/// active region's dispatcher delivers, and so does a passive one whose last epoch ended by a planned switchover (what
/// it still owes); each trims old events. Bounded:
/// <see cref="WebhookOptions.MaxInFlight"/> attempts at once, <see cref="WebhookOptions.MaxConcurrencyPerEndpoint"/> per
/// endpoint, <see cref="WebhookOptions.InFlightPerMerchant"/> per merchant, <see cref="MaxMarkersTaken"/> events in hand, <see cref="MaxDuePerScan"/> × <see cref="MaxScanPages"/> owed
/// deliveries read per scan.</remarks>
public sealed partial class WebhookDispatcher(
    WebhookDeliveries deliveries, WebhookEndpointStore endpoints, WebhookSender sender, WebhookOptions options, EtcdConnection etcd,
    EtcdOptions layout, RegionGate region, RegionEpochWatcher regionEpoch, PaymentRecordStore records, MerchantStore merchantStore, TimeProvider time,
    ILogger<WebhookDispatcher> logger) : BackgroundService
{
    /// <summary>Deliveries read per page of a scan of what is due.</summary>
    public const int MaxDuePerScan = 256;

    /// <summary>Pages one scan reads at most.</summary>
    public const int MaxScanPages = 8;

    /// <summary>Settled deliveries and markers recorded in etcd per round, each at most (the rest in the next rounds).</summary>
    public const int MaxSettledPerRound = 4 * WebhookDeliveries.MaxOpsPerTxn;

    /// <summary>Longest pause between two scans when nothing wakes the dispatcher (a retry coming due is found then).</summary>
    public static readonly TimeSpan IdlePoll = TimeSpan.FromSeconds(1);

    /// <summary>The lock's lease: how long a dead dispatcher holds up deliveries at most.</summary>
    public static readonly TimeSpan LockLease = TimeSpan.FromSeconds(10);

    /// <summary>How often old events are trimmed.</summary>
    public static readonly TimeSpan TrimInterval = TimeSpan.FromMinutes(10);

    /// <summary>Pause after a fault (etcd away) before the next round.</summary>
    public static readonly TimeSpan FaultPause = TimeSpan.FromSeconds(1);

    private static readonly Counter<long> Attempts = PaymentsTelemetry.Meter.CreateCounter<long>(
        "payments.webhooks.attempts", description: "webhook delivery attempts, by outcome (delivered, failed, given_up, dropped)");

    /// <summary>Scans of the owed deliveries (etcd reads): about one per <see cref="IdlePoll"/> plus one per ended attempt.</summary>
    private static readonly Counter<long> DueScans = PaymentsTelemetry.Meter.CreateCounter<long>(
        "payments.webhooks.due_scans", description: "scans of the owed webhook deliveries (each reads etcd)");

    private readonly ConcurrentDictionary<string, byte> inFlight = new(StringComparer.Ordinal);

    /// <summary>Owed deliveries that left <see cref="inFlight"/> since the current scan of what is due began (cleared
    /// at its start): one whose retry ended while the scan read etcd came back in the scan's stale page as due and not
    /// in flight, and was attempted a second time at once (a black-box probe saw pairs 10 ms apart).</summary>
    private readonly ConcurrentDictionary<string, byte> endedDuringScan = new(StringComparer.Ordinal);
    private readonly Lock slots = new();
    private readonly Dictionary<string, int> perEndpoint = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> perMerchant = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<DueDelivery> delivered = new();
    private readonly ConcurrentDictionary<string, byte> markersTaken = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<SettledMarker> settledMarkers = new();
    private int attempting;
    private int dueScanWanted = 1;
    private long lastDueScanMs = long.MinValue / 2;
    private readonly SemaphoreSlim wake = new(0, 1);
    private DateTimeOffset nextTrim = DateTimeOffset.MinValue;
    private bool legacyMerchantsRecorded;
    private IReadOnlyList<string>? legacyWithoutRecords;
    private DateTimeOffset nextHandOverCheck = DateTimeOffset.MinValue;
    private bool handedOver;
    private RegionEpochMirror? regionMirror;
    private string? trimCursor;
    private string? dueCursor;

    /// <summary>Asks the dispatcher to look for work now (an outbox marker appeared, a delivery ended).</summary>
    public void Wake()
    {
        try
        {
            if (wake.CurrentCount == 0)
            {
                wake.Release();
            }
        }
        catch (SemaphoreFullException)
        {
            // already awake
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Runs with delivery off too: the payments still write events and outbox markers, and only this trims them.
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var held = await EtcdFencedLock.TryAcquireAsync(
                    etcd, layout.WebhookLockKey, Environment.MachineName + "/" + Environment.ProcessId, LockLease, TimeProvider.System, logger, stoppingToken);
                if (held is null)
                {
                    // Not woken by new events: a replica that does not hold the lock retries on its own schedule (each
                    // try costs etcd a lease and a transaction).
                    await SleepAsync(LockLease / 4, stoppingToken);
                    continue;
                }

                using var linked = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, held.LostToken);
                await LeadAsync(held, linked.Token);
            }
            catch (Exception) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception exception) when (!stoppingToken.IsCancellationRequested)
            {
                // etcd away, the lock lost, or anything unforeseen: the API keeps serving; the dispatcher tries again.
                LogFault(exception.Message);
                await SleepAsync(FaultPause, stoppingToken);
            }
        }
    }

    /// <summary>Works while this replica holds the lock (until <paramref name="cancellationToken"/> ends).</summary>
    /// <summary>How often a passive region asks whether its last epoch was handed over (one etcd read).</summary>
    public static readonly TimeSpan HandOverCheckInterval = TimeSpan.FromSeconds(10);

    /// <summary>Whether this region's dispatcher delivers: a single region or the active one, always; a passive one only
    /// when the last epoch it held was closed by a planned switchover (<see cref="RegionEpochMirror.LastEpochHandedOverAsync"/>).
    /// Its outbox then holds only events the other region has too (the switchover shipped everything first; copied
    /// records come without markers). After a loss it may hold events of changes that never reached the region that
    /// took over, which may have decided those payments otherwise: those are not sent.</summary>
    private async Task<bool> DeliversHereAsync(CancellationToken cancellationToken)
    {
        if (!region.Enabled || regionEpoch.IsWritable)
        {
            return true;
        }

        var now = time.GetUtcNow();
        if (now >= nextHandOverCheck)
        {
            handedOver = await (regionMirror ??= new RegionEpochMirror(etcd, layout.KeyPrefix)).LastEpochHandedOverAsync(cancellationToken);
            nextHandOverCheck = now + HandOverCheckInterval;
        }

        return handedOver;
    }

    private async Task LeadAsync(EtcdFencedLock held, CancellationToken cancellationToken)
    {
        var running = new List<Task>();
        ForgetOwedShares();
        // New markers come to the leader through its watch (WebhookDispatcher.Outbox.cs); only the leader watches (a
        // replica waiting for the lock would be sent every marker for nothing). The watch's start asks for a full read
        // of the outbox, so nothing committed before it is left waiting.
        ResetOutboxFeed();
        using var watching = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        // Puts only: settling a marker deletes it, and the leader has nothing to do with a deletion.
        var watch = options.Deliver
            ? new EtcdPrefixWatch(etcd, deliveries.OutboxRoot, logger) { PutsOnly = true }.RunWithRevisionsAsync(OnOutboxWatchStart, OnOutboxChange, watching.Token)
            : Task.CompletedTask;
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                // etcd away for a moment (a leader election, a read timing out): the lead goes on while the lock holds.
                // Ending it dropped what was delivered but not yet recorded, and the next lead sent it all again (a
                // review finding). A lost lock ends the lead through its token; a fenced write throws. The trim runs
                // on its own, so a round failing again and again does not stop it.
                await TransientFaultsPassAsync(() => RoundAsync(held, running, cancellationToken), cancellationToken);
                await TransientFaultsPassAsync(() => TrimIfDueAsync(cancellationToken), cancellationToken);
                await PauseAsync(IdlePoll, cancellationToken);
            }
        }
        finally
        {
            await watching.CancelAsync();
            try
            {
                await watch;
            }
            catch (Exception) when (watching.IsCancellationRequested)
            {
                // the watch ends by its cancellation
            }

            // Attempts under way end within their timeout; their writes fail the fence if the lock is gone.
            await Task.WhenAll(running);
            // What was attempted but not yet recorded in etcd is sent again by a later leader (at least once) — by this
            // one too, so it must not stay marked as taken here.
            while (delivered.TryDequeue(out var due))
            {
                inFlight.TryRemove(due.Key, out _);
            }

            settledMarkers.Clear();
            markersTaken.Clear();
            endedDuringScan.Clear();
            dueCursor = null;
            ResetOutboxFeed();
        }
    }

    /// <summary>Runs <paramref name="step"/>; an etcd fault (not a lost fence) is logged and paused on, not thrown.</summary>
    private async Task TransientFaultsPassAsync(Func<Task> step, CancellationToken cancellationToken)
    {
        try
        {
            await step();
        }
        catch (Exception exception) when (exception is Grpc.Core.RpcException or EtcdContentionException && !cancellationToken.IsCancellationRequested)
        {
            LogFault(exception.Message);
            await PauseAsync(FaultPause, cancellationToken);
        }
    }

    /// <summary>One round of the lead: new events' first attempts, owed deliveries due, what settled recorded.</summary>
    private async Task RoundAsync(EtcdFencedLock held, List<Task> running, CancellationToken cancellationToken)
    {
        // A passive region trims, and delivers what its own outbox and owed deliveries hold when its last epoch ended by
        // a planned switchover (DeliversHereAsync). It used to stop with its demotion, so a switchover (every upgrade)
        // left what it owed a receiver that was down undelivered for good.
        if (options.Deliver && await DeliversHereAsync(cancellationToken))
        {
            running.RemoveAll(task => task.IsCompleted);
            running.AddRange(await TakeMarkersAsync(cancellationToken));
            if (DueScanDue())
            {
                running.AddRange(await StartDueAsync(held, cancellationToken));
            }
        }

        await FlushAsync(held, cancellationToken);
    }

    /// <summary>Records in etcd, together, what the attempts since the last round settled: deliveries that succeeded
    /// (deleted) and markers whose first attempts are over (deleted, with what is still owed). Then they are no
    /// longer held in memory: they are gone from etcd, or owed there.</summary>
    private async Task FlushAsync(EtcdFencedLock held, CancellationToken cancellationToken)
    {
        var done = Drain(delivered);
        var settled = settledMarkers.Count >= WebhookDeliveries.MaxMarkersPerRound
                      || (settledMarkers.TryPeek(out var oldest) && time.GetElapsedTime(oldest.SettledAt) >= SettleDelay)
            ? Drain(settledMarkers)
            : [];
        try
        {
            settled = await BoundOwedAsync(settled, cancellationToken);
            if ((done.Count > 0 && !await deliveries.EndAllAsync(held, done, cancellationToken))
                || (settled.Count > 0 && !await deliveries.SettleMarkersAsync(held, settled, cancellationToken)))
            {
                throw new InvalidOperationException($"Fenced off: {held.Description} is no longer held.");
            }
        }
        catch (Exception exception) when (exception is Grpc.Core.RpcException or EtcdContentionException && !cancellationToken.IsCancellationRequested)
        {
            // Perhaps not recorded (etcd away for a moment). Deliveries that succeeded stay in hand for the next round:
            // their deletes compare each key's revision, so doing them again is safe, where dropping them sent them
            // again. Settled markers are not written twice (their owed deliveries are plain puts: a write that did
            // commit would bring back a delivery retried or ended meanwhile): a marker still in etcd is read again at
            // once and its event sent again, as at-least-once allows.
            foreach (var due in done)
            {
                delivered.Enqueue(due);
            }

            done = [];
            OwedNotKept(settled); // read again and settled again, they would be counted twice in their merchants' shares
            Volatile.Write(ref fullReadWanted, 1);
            throw;
        }
        finally
        {
            foreach (var due in done)
            {
                EndInFlight(due.Key);
            }

            foreach (var marker in settled)
            {
                markersTaken.TryRemove(marker.Key, out _);
            }
        }
    }

    private static List<T> Drain<T>(ConcurrentQueue<T> queue)
    {
        var drained = new List<T>();
        while (drained.Count < MaxSettledPerRound && queue.TryDequeue(out var item))
        {
            drained.Add(item);
        }

        return drained;
    }

    /// <summary>A place for one attempt to <paramref name="endpointId"/> of <paramref name="merchantId"/>, within the
    /// three bounds; false when there is none. The merchant's bound keeps one merchant (16 endpoints × 4 slots, aimed
    /// at receivers that answer in 9.9 s) from holding every slot and delaying every other merchant's deliveries.</summary>
    private bool TryTakeSlot(string merchantId, string endpointId)
    {
        lock (slots)
        {
            var atEndpoint = perEndpoint.GetValueOrDefault(endpointId);
            var ofMerchant = perMerchant.GetValueOrDefault(merchantId);
            if (attempting >= options.MaxInFlight || atEndpoint >= options.MaxConcurrencyPerEndpoint || ofMerchant >= options.InFlightPerMerchant)
            {
                return false;
            }

            attempting++;
            perEndpoint[endpointId] = atEndpoint + 1;
            perMerchant[merchantId] = ofMerchant + 1;
            return true;
        }
    }

    private void ReleaseSlot(string merchantId, string endpointId)
    {
        lock (slots)
        {
            attempting--;
            Decrement(perEndpoint, endpointId);
            Decrement(perMerchant, merchantId);
        }

        // Endpoints and merchants come and go: keep only those with attempts under way.
        static void Decrement(Dictionary<string, int> counts, string key)
        {
            if (counts.GetValueOrDefault(key) <= 1)
            {
                counts.Remove(key);
            }
            else
            {
                counts[key]--;
            }
        }
    }

    /// <summary>Asks for a scan of the owed deliveries at the next round: an attempt ended, so its slot may start one.</summary>
    private void WantDueScan() => Volatile.Write(ref dueScanWanted, 1);

    /// <summary>Whether this round scans the owed deliveries: when an attempt ended since the last scan, or
    /// <see cref="IdlePoll"/> after it (an owed delivery comes due with time, which wakes nothing). Not at every new
    /// event: a new event owes nothing until its first attempt fails, and scanning at each one cost every payment an
    /// etcd read (measured: 0.65 per payment with no endpoint registered anywhere). Real time, like the idle pause.</summary>
    private bool DueScanDue()
    {
        var now = Environment.TickCount64;
        if (Interlocked.Exchange(ref dueScanWanted, 0) == 0 && now - lastDueScanMs < (long)IdlePoll.TotalMilliseconds)
        {
            return false;
        }

        lastDueScanMs = now;
        DueScans.Add(1);
        return true;
    }

    /// <summary>Waits <paramref name="pause"/> whatever happens meanwhile (but stopping).</summary>
    private async Task SleepAsync(TimeSpan pause, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(pause, time, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // leaving
        }
    }

    /// <summary>Waits <paramref name="pause"/>, or less when <see cref="Wake"/> is called.</summary>
    private async Task PauseAsync(TimeSpan pause, CancellationToken cancellationToken)
    {
        try
        {
            await wake.WaitAsync(pause, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // leaving
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Webhook dispatcher: {Error}; retrying")]
    private partial void LogFault(string error);
}

using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Payments.Etcd;
using Payments.Api.Regions;
using Payments.Etcd.Regions;
using Payments.Orchestrator.Client.Records;
using Payments.Telemetry;

namespace Payments.Api.Webhooks;

/// <summary>Delivers payment events to merchants' endpoints: takes the outbox markers that record changes leave
/// (fanning each event out to the merchant's endpoints that want it), sends what is due, retries failures with
/// exponential backoff for <see cref="WebhookOptions.RetryFor"/>, and trims events older than their retention.</summary>
/// <remarks>Every API replica runs one; the one holding the dispatcher lock works, the others wait to take over (the
/// lock's lease ends 10 s after its holder dies). Its writes carry the lock's fence. In a two-region deployment only
/// the active region's dispatcher delivers; the passive one only trims old events. Bounded: <see cref="WebhookOptions.MaxInFlight"/> deliveries at once,
/// <see cref="WebhookOptions.MaxConcurrencyPerEndpoint"/> per endpoint, <see cref="MaxDuePerScan"/> read per scan.</remarks>
public sealed partial class WebhookDispatcher(
    WebhookDeliveries deliveries, WebhookEndpointStore endpoints, WebhookSender sender, WebhookOptions options, EtcdConnection etcd,
    EtcdOptions layout, RegionGate region, RegionEpochWatcher regionEpoch, PaymentRecordStore records, TimeProvider time, ILogger<WebhookDispatcher> logger) : BackgroundService
{
    /// <summary>Deliveries read per page of a scan of what is due.</summary>
    public const int MaxDuePerScan = 256;

    /// <summary>Pages one scan reads at most.</summary>
    public const int MaxScanPages = 8;

    /// <summary>Rounds of outbox markers taken before the dispatcher turns to deliveries again.</summary>
    public const int MaxRelayRoundsPerPass = 32;

    /// <summary>Delivered deliveries ended in etcd per round, at most (the rest in the next rounds).</summary>
    public const int MaxEndsPerRound = 4 * WebhookDeliveries.MaxOpsPerTxn;

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

    private readonly ConcurrentDictionary<string, byte> inFlight = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int> perEndpoint = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<DueDelivery> delivered = new();
    private readonly SemaphoreSlim wake = new(0, 1);
    private DateTimeOffset nextTrim = DateTimeOffset.MinValue;
    private string? trimCursor;

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
        if (!options.Deliver)
        {
            return;
        }

        var watch = new EtcdPrefixWatch(etcd, deliveries.OutboxRoot, logger).RunAsync(Wake, (_, deleted) => { if (!deleted) { Wake(); } }, stoppingToken);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var held = await EtcdFencedLock.TryAcquireAsync(
                    etcd, layout.WebhookLockKey, Environment.MachineName + "/" + Environment.ProcessId, LockLease, TimeProvider.System, logger, stoppingToken);
                if (held is null)
                {
                    await PauseAsync(LockLease / 4, stoppingToken);
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
                await PauseAsync(FaultPause, stoppingToken);
            }
        }

        await watch;
    }

    /// <summary>Works while this replica holds the lock (until <paramref name="cancellationToken"/> ends).</summary>
    private async Task LeadAsync(EtcdFencedLock held, CancellationToken cancellationToken)
    {
        var running = new List<Task>();
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                // A passive region delivers nothing (the active one does), but trims: the events shipped to it with
                // the payment records would otherwise pile up until it takes over.
                if (!region.Enabled || regionEpoch.IsWritable)
                {
                    for (var round = 1; round < MaxRelayRoundsPerPass && await RelayAsync(held, cancellationToken) == WebhookDeliveries.MaxMarkersPerRound; round++)
                    {
                        // a full round: more markers wait
                    }

                    running.RemoveAll(task => task.IsCompleted);
                    running.AddRange(await StartDueAsync(held, cancellationToken));
                }

                await FlushDeliveredAsync(held, cancellationToken);
                await TrimIfDueAsync(cancellationToken);
                await PauseAsync(IdlePoll, cancellationToken);
            }
        }
        finally
        {
            // Deliveries under way end within their timeout; their last writes fail the fence if the lock is gone.
            await Task.WhenAll(running);
            // Delivered but not yet ended in etcd: a later leader sends them again (at least once) — this one too, so
            // they must not stay marked as in flight here.
            while (delivered.TryDequeue(out var due))
            {
                inFlight.TryRemove(due.Key, out _);
            }
        }
    }

    /// <summary>Ends in etcd, together, the deliveries that succeeded since the last round (then they may be
    /// scanned again: they are gone).</summary>
    private async Task FlushDeliveredAsync(EtcdFencedLock held, CancellationToken cancellationToken)
    {
        var done = new List<DueDelivery>();
        while (done.Count < MaxEndsPerRound && delivered.TryDequeue(out var due))
        {
            done.Add(due);
        }

        try
        {
            if (done.Count > 0 && !await deliveries.EndAllAsync(held, done, cancellationToken))
            {
                throw new InvalidOperationException($"Fenced off: {held.Description} is no longer held.");
            }
        }
        finally
        {
            foreach (var due in done)
            {
                inFlight.TryRemove(due.Key, out _);
            }
        }
    }

    /// <summary>Takes one round of outbox markers: each event becomes a delivery per endpoint of its merchant that wants
    /// it, in transactions that delete the markers they cover. Returns how many markers were taken.</summary>
    private async Task<int> RelayAsync(EtcdFencedLock held, CancellationToken cancellationToken)
    {
        var markers = await deliveries.MarkersAsync(cancellationToken);
        var endpointsOf = new Dictionary<string, IReadOnlyList<WebhookEndpoint>>(StringComparer.Ordinal);
        var now = time.GetUtcNow();
        var keys = new List<string>();
        var batch = new List<WebhookDelivery>();
        foreach (var marker in markers)
        {
            if (!endpointsOf.TryGetValue(marker.MerchantId, out var merchantEndpoints))
            {
                endpointsOf[marker.MerchantId] = merchantEndpoints = await endpoints.ListAsync(marker.MerchantId, cancellationToken);
            }

            var owed = merchantEndpoints.Where(endpoint => endpoint.Wants(marker.Type))
                .Select(endpoint => new WebhookDelivery(marker.MerchantId, endpoint.Id, marker.EventId, marker.LogKey, 0, now)).ToArray();
            if (keys.Count + batch.Count + 1 + owed.Length > WebhookDeliveries.MaxOpsPerTxn)
            {
                await FanOutAsync(held, keys, batch, now, cancellationToken);
                keys.Clear();
                batch.Clear();
            }

            keys.Add(marker.Key);
            batch.AddRange(owed);
        }

        if (keys.Count > 0)
        {
            await FanOutAsync(held, keys, batch, now, cancellationToken);
        }

        return markers.Count;
    }

    private async Task FanOutAsync(EtcdFencedLock held, List<string> keys, List<WebhookDelivery> batch, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (!await deliveries.FanOutAsync(held, keys, batch, now, cancellationToken))
        {
            throw new InvalidOperationException($"Fenced off: {held.Description} is no longer held.");
        }
    }

    /// <summary>Starts the deliveries due now, within the bounds; returns their tasks. Reads on past the deliveries it
    /// cannot start (their endpoint busy), up to <see cref="MaxScanPages"/> pages: one slow endpoint's backlog does not
    /// hold up the others' deliveries unless it exceeds that many.</summary>
    private async Task<IReadOnlyList<Task>> StartDueAsync(EtcdFencedLock held, CancellationToken cancellationToken)
    {
        var started = new List<Task>();
        string? after = null;
        for (var page = 0; page < MaxScanPages && inFlight.Count < options.MaxInFlight; page++)
        {
            var (due, more) = await deliveries.DueAsync(time.GetUtcNow(), after, MaxDuePerScan, cancellationToken);
            foreach (var delivery in due)
            {
                if (inFlight.Count >= options.MaxInFlight)
                {
                    break;
                }

                var endpointId = delivery.Delivery.EndpointId;
                if (inFlight.ContainsKey(delivery.Key) || perEndpoint.GetValueOrDefault(endpointId) >= options.MaxConcurrencyPerEndpoint)
                {
                    continue;
                }

                inFlight[delivery.Key] = 0;
                perEndpoint.AddOrUpdate(endpointId, 1, (_, count) => count + 1);
                started.Add(Task.Run(() => DeliverAsync(held, delivery, cancellationToken), CancellationToken.None));
            }

            if (!more || due.Count == 0)
            {
                break;
            }

            after = due[^1].Key;
        }

        return started;
    }

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

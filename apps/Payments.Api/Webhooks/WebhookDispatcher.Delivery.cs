using Etcdserverpb;
using Payments.Etcd;
using Payments.Orchestrator.Client.Records;

namespace Payments.Api.Webhooks;

public sealed partial class WebhookDispatcher
{
    /// <summary>The first retry's pause; each next one doubles it, up to <see cref="WebhookOptions.MaxBackoff"/>.</summary>
    public static readonly TimeSpan FirstBackoff = TimeSpan.FromSeconds(5);

    /// <summary>Merchants whose old events one round's trim looks at, at most (two etcd calls each): the trim runs in
    /// the delivery loop, so a pass over many merchants is spread over rounds instead of holding deliveries up.</summary>
    public const int MaxMerchantsPerTrim = 32;

    /// <summary>The pause before attempt <paramref name="attempt"/> + 1: <see cref="FirstBackoff"/> doubled per attempt,
    /// capped at <paramref name="maxBackoff"/>, then up to a fifth shorter at random, so that the deliveries of an endpoint
    /// that was down do not all come back in the same second.</summary>
    public static TimeSpan Backoff(int attempt, TimeSpan firstBackoff, TimeSpan maxBackoff, double random)
    {
        var exponential = firstBackoff.Ticks * Math.Pow(2, Math.Clamp(attempt - 1, 0, 30));
        var capped = Math.Min(exponential, maxBackoff.Ticks);
        return TimeSpan.FromTicks((long)(capped * (1 - (0.2 * Math.Clamp(random, 0, 1)))));
    }

    /// <summary>Starts the owed deliveries that are due, within the bounds; returns their tasks. Reads on past the
    /// deliveries it cannot start (their endpoint or merchant busy), up to <see cref="MaxScanPages"/> pages, and the
    /// next scan goes on from where this one stopped, back to the oldest once it reaches what is due now: every due
    /// delivery is looked at within a bounded number of scans, however large one merchant's backlog (a scan that always
    /// began at the oldest never reached what sorted after one slow merchant's <see cref="MaxScanPages"/> pages).</summary>
    private async Task<IReadOnlyList<Task>> StartDueAsync(EtcdFencedLock held, CancellationToken cancellationToken)
    {
        var started = new List<Task>();
        endedDuringScan.Clear();
        var after = dueCursor;
        var wrapped = after is null;
        for (var page = 0; page < MaxScanPages && Volatile.Read(ref attempting) < options.MaxInFlight; page++)
        {
            var (due, more, unreadable) = await deliveries.DueAsync(time.GetUtcNow(), after, MaxDuePerScan, cancellationToken);
            foreach (var key in unreadable)
            {
                LogFault($"unreadable owed webhook delivery {key} removed (its event, if any, stays in GET /v1/events)");
            }

            foreach (var delivery in due.Where(delivery => !inFlight.ContainsKey(delivery.Key) && !endedDuringScan.ContainsKey(delivery.Key)))
            {
                if (!TryTakeSlot(delivery.Delivery.MerchantId, delivery.Delivery.EndpointId))
                {
                    continue;
                }

                inFlight[delivery.Key] = 0;
                started.Add(Task.Run(() => RetryOwedAsync(held, delivery, cancellationToken), CancellationToken.None));
            }

            if (more && due.Count > 0)
            {
                after = due[^1].Key;
                continue;
            }

            if (wrapped)
            {
                dueCursor = null; // everything due was looked at: the next scan starts at the oldest
                return started;
            }

            (after, wrapped) = (null, true); // the end of what is due: on from the oldest
        }

        dueCursor = after;
        return started;
    }

    /// <summary>An owed delivery is no longer worked on (its record in etcd written, or left for the next scan).</summary>
    private void EndInFlight(string key)
    {
        endedDuringScan[key] = 0; // before it leaves inFlight: a scan under way never sees it in neither
        inFlight.TryRemove(key, out _);
    }

    /// <summary>Another attempt of an owed delivery (its slot taken), then its bookkeeping: ended when delivered (or
    /// moot: endpoint deleted, event trimmed), given up after <see cref="WebhookOptions.RetryFor"/>, else owed again
    /// after its backoff.</summary>
    private async Task RetryOwedAsync(EtcdFencedLock held, DueDelivery due, CancellationToken cancellationToken)
    {
        var delivery = due.Delivery;
        var keep = false;
        var slotHeld = true;
        try
        {
            var (endpointValue, eventValue) = await deliveries.ReadAsync(endpoints.KeyOf(delivery.MerchantId, delivery.EndpointId), delivery.EventKey, cancellationToken);
            if (endpointValue is null || eventValue is null || TryDecode(endpointValue) is not { } endpoint || !delivery.IsOwedTo(endpoint))
            {
                // The endpoint was deleted (or deleted and made again under its key's id: the new one was not there
                // when this delivery began, and may want other events), the event trimmed, or the endpoint's record
                // unreadable: nothing to send. An event trimmed while its delivery still had retries left is a delivery
                // given up, and said so.
                var trimmedEarly = endpointValue is not null && eventValue is null && time.GetUtcNow() - delivery.FirstAt < options.RetryFor;
                Attempts.Add(1, new KeyValuePair<string, object?>("outcome", trimmedEarly ? "given_up" : "dropped"));
                if (trimmedEarly)
                {
                    LogEventTrimmed(delivery.EventId, delivery.EndpointId, delivery.Attempt);
                }

                await EndOwedAsync(held, due, cancellationToken);
                return;
            }

            slotHeld = false; // AttemptAsync releases it
            var (_, outcome, detail) = await AttemptAsync(endpoint, delivery, eventValue.ToByteArray(), cancellationToken);
            if (outcome == WebhookAttempt.Delivered)
            {
                delivered.Enqueue(due); // ended in etcd by the next round, with the others; in flight till then
                keep = true;
                OwedEnded(delivery.MerchantId);
            }
            else if (time.GetUtcNow() - delivery.FirstAt >= options.RetryFor)
            {
                Attempts.Add(1, new KeyValuePair<string, object?>("outcome", "given_up"));
                LogGivenUp(delivery.EventId, delivery.EndpointId, delivery.Attempt + 1, detail);
                await EndOwedAsync(held, due, cancellationToken);
            }
            else
            {
                var pause = NextPause(delivery.Attempt + 1);
                LogRetry(delivery.EventId, delivery.EndpointId, delivery.Attempt + 1, detail, pause.TotalSeconds);
                await deliveries.RetryAsync(held, due, time.GetUtcNow() + pause, cancellationToken);
            }
        }
        catch (Exception exception)
        {
            // etcd away or the lock lost: the delivery stays as it is in etcd and comes up at the next scan (no wake,
            // so a fault does not turn into a busy loop).
            LogFault(exception.Message);
            return;
        }
        finally
        {
            if (slotHeld)
            {
                ReleaseSlot(delivery.MerchantId, delivery.EndpointId);
            }

            if (!keep)
            {
                EndInFlight(due.Key);
            }
        }

        WantDueScan();
        Wake(); // the endpoint has a free slot: start what waits for it
    }

    /// <summary>Ends an owed delivery in etcd, and in its merchant's share.</summary>
    private async Task EndOwedAsync(EtcdFencedLock held, DueDelivery due, CancellationToken cancellationToken)
    {
        await deliveries.EndAsync(held, due, cancellationToken);
        OwedEnded(due.Delivery.MerchantId);
    }

    /// <summary>The endpoint, or null (logged) if its record cannot be read — never a delivery retried forever.</summary>
    private WebhookEndpoint? TryDecode(Google.Protobuf.ByteString value)
    {
        var endpoint = WebhookEndpointStore.TryDecode(value);
        if (endpoint is null)
        {
            LogFault("unreadable webhook endpoint record");
        }

        return endpoint;
    }

    /// <summary>Deletes events older than <see cref="WebhookOptions.EventRetention"/>, one range delete per merchant,
    /// merchant after merchant (at most <see cref="MaxMerchantsPerTrim"/> per pass, going on where the last pass ended).
    /// Every event is a merchant's (the API writes them for payments of merchants it knows), merchants are never
    /// deleted, and merchants from before merchant records get theirs first, so the records name every events prefix.</summary>
    private async Task TrimIfDueAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        if (now < nextTrim)
        {
            return;
        }

        if (!options.Deliver)
        {
            // Nothing takes the outbox's markers nor the owed deliveries while delivery is off: those older than the
            // retry window go (no delivery would be attempted for them any more: an owed one is due within the window
            // of its first attempt); younger ones stay, so turning delivery back on sends them.
            foreach (var root in new[] { deliveries.OutboxRoot, deliveries.DueRoot })
            {
                await EtcdConnection.CallAsync(token => etcd.Kv.DeleteRangeAsync(new DeleteRangeRequest
                {
                    Key = EtcdBytes.Key(root), RangeEnd = EtcdBytes.Key(root + EtcdBytes.TimeKey(now - options.RetryFor)),
                }, cancellationToken: token), cancellationToken);
            }
        }

        if (trimCursor is null)
        {
            await endpoints.TrimRemovalsAsync(cancellationToken); // once per pass: one range delete
        }

        if (trimCursor is null && !legacyMerchantsRecorded && (!region.Enabled || regionEpoch.IsWritable))
        {
            // Once per process, where writes are allowed (the records reach a standby with the others).
            await merchantStore.RecordLegacyMerchantsAsync(cancellationToken);
            try
            {
                await endpoints.ShipExistingAsync(cancellationToken);
                legacyMerchantsRecorded = true;
            }
            catch (Exception exception) when (exception is Grpc.Core.RpcException or Payments.Ledger.Contracts.RegionNotWritableException or EtcdContentionException
                                              && !cancellationToken.IsCancellationRequested)
            {
                // Not now (etcd away, the region demoted meanwhile): this pass trims on, and the next one tries again.
                // Thrown, it ended this replica's lead, and what it had settled but not yet recorded was sent again.
                LogFault("endpoints not yet rewritten for shipping: " + exception.Message);
            }
        }

        // Merchant by merchant from the merchant records: finding the next merchant among the events themselves took a
        // range to the last event, which etcd answers by counting every event after the cursor — per merchant, per pass.
        var (merchants, more) = await merchantStore.MerchantIdsAsync(trimCursor, MaxMerchantsPerTrim, cancellationToken);
        var cutoff = EtcdBytes.TimeKey(now - options.EventRetention);
        foreach (var merchant in merchants)
        {
            await TrimMerchantAsync(merchant, cutoff, cancellationToken);
        }

        // More merchants than one pass takes: the next round goes on from the last.
        trimCursor = more && merchants.Count > 0 ? merchants[^1] : null;
        if (trimCursor is null)
        {
            // The pass ends with the merchants whose ids no record can have (read once per process, in every region).
            legacyWithoutRecords ??= await merchantStore.LegacyMerchantsWithoutRecordsAsync(cancellationToken);
            foreach (var merchant in legacyWithoutRecords)
            {
                await TrimMerchantAsync(merchant, cutoff, cancellationToken);
            }

            nextTrim = now + TrimInterval;
        }
    }

    /// <summary>Deletes the merchant's events older than <paramref name="cutoff"/> (a time key): one range delete.</summary>
    private async Task TrimMerchantAsync(string merchant, string cutoff, CancellationToken cancellationToken)
    {
        var merchantRoot = PaymentEvents.MerchantRoot(records.EventsRoot, merchant);
        await EtcdConnection.CallAsync(token => etcd.Kv.DeleteRangeAsync(new DeleteRangeRequest
        {
            Key = EtcdBytes.Key(merchantRoot), RangeEnd = EtcdBytes.Key(merchantRoot + cutoff),
        }, cancellationToken: token), cancellationToken);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Webhook {EventId} to endpoint {EndpointId}: attempt {Attempt} failed ({Detail}); next in {Seconds:F0} s")]
    private partial void LogRetry(string eventId, string endpointId, int attempt, string detail, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Webhook {EventId} to endpoint {EndpointId}: given up after {Attempt} attempts, its event was trimmed before its retries ended (Webhooks:EventRetention too short for how late delivery ran)")]
    private partial void LogEventTrimmed(string eventId, string endpointId, int attempt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Webhook {EventId} to endpoint {EndpointId}: given up after {Attempt} attempts ({Detail}); the event stays in GET /v1/events")]
    private partial void LogGivenUp(string eventId, string endpointId, int attempt, string detail);
}

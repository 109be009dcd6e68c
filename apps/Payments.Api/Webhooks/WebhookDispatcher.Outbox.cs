using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Google.Protobuf;
using Payments.Telemetry;

namespace Payments.Api.Webhooks;

/// <summary>Where the leader's new outbox markers come from: the watch that wakes it carries each marker, so the
/// leader takes them from there and reads the outbox itself only when the watch (re)starts, when a read was cut short,
/// when the watch announced more than <see cref="MaxWatchedMarkers"/>, and every <see cref="FullReadInterval"/>.</summary>
/// <remarks>Why not read the outbox at every wake-up, as before: markers are deleted once settled, and etcd visits
/// the keys deleted under a range since the last compaction (10 min) before it applies the limit (3.4: all of them; 3.5:
/// those before the first live key)
/// (etcd-io/etcd#11057). At 40 payments/s that is up to 24,000 keys per read, one read per payment. A marker the watch
/// passes on at a revision at or below the last full read's was seen by that read (or was gone by then), so it is
/// dropped; one above it was not, so it is taken. Nothing is lost to the order of the two: the watch's start asks for a
/// full read, which comes after the watch's own start revision.</remarks>
public sealed partial class WebhookDispatcher
{
    /// <summary>Markers passed on by the watch and not yet taken, at most; past it the next round reads the outbox.</summary>
    public const int MaxWatchedMarkers = 4_096;

    /// <summary>The longest time between two full reads of the outbox: what a marker the watch could not pass on waits
    /// at most (a safety net; the watch passes on every marker while it runs).</summary>
    public static readonly TimeSpan FullReadInterval = TimeSpan.FromSeconds(30);

    /// <summary>Full reads of the outbox: about one per <see cref="FullReadInterval"/> while the watch runs.</summary>
    private static readonly Counter<long> OutboxReads = PaymentsTelemetry.Meter.CreateCounter<long>(
        "payments.webhooks.outbox_reads", description: "full reads of the webhook outbox (each reads etcd); new markers otherwise come through the watch");

    private readonly ConcurrentQueue<(OutboxMarker Marker, long Revision)> watchedMarkers = new();
    private int watchedCount;
    private int fullReadWanted = 1;
    private long fullReadRevision;
    private long lastFullReadMs = long.MinValue / 2;

    /// <summary>The watch (re)started: what changed while it was down was not passed on.</summary>
    private void OnOutboxWatchStart()
    {
        Volatile.Write(ref fullReadWanted, 1);
        Wake();
    }

    /// <summary>A marker written (or deleted: nothing to do) at <paramref name="revision"/>.</summary>
    private void OnOutboxChange(string key, ByteString? value, long revision)
    {
        if (value is null)
        {
            return;
        }

        if (Interlocked.Increment(ref watchedCount) > MaxWatchedMarkers)
        {
            Interlocked.Decrement(ref watchedCount);
            Volatile.Write(ref fullReadWanted, 1); // too many waiting: the next read finds this one
        }
        else
        {
            try
            {
                watchedMarkers.Enqueue((deliveries.Marker(deliveries.OutboxRoot + key, value), revision));
            }
            catch (InvalidDataException)
            {
                Interlocked.Decrement(ref watchedCount);
                Volatile.Write(ref fullReadWanted, 1); // not a marker we can parse: the full read reports it as before
            }
        }

        Wake();
    }

    /// <summary>The markers of this round: a full read (at most <paramref name="readLimit"/>, from the oldest) when one
    /// is wanted or due, otherwise at most <see cref="WebhookDeliveries.MaxMarkersPerRound"/> of those the watch passed on.</summary>
    private async Task<IReadOnlyList<OutboxMarker>> NextMarkersAsync(int readLimit, CancellationToken cancellationToken)
    {
        var now = Environment.TickCount64; // real time, like the idle pause
        if (Interlocked.Exchange(ref fullReadWanted, 0) == 1 || now - lastFullReadMs >= (long)FullReadInterval.TotalMilliseconds)
        {
            OutboxReads.Add(1);
            try
            {
                var (markers, revision, more, unreadable) = await deliveries.MarkersAsync(readLimit, cancellationToken);
                foreach (var key in unreadable)
                {
                    LogFault($"unreadable webhook outbox marker {key} removed (its event, if any, stays in GET /v1/events)");
                }

                lastFullReadMs = now;
                Volatile.Write(ref fullReadRevision, revision);
                if (more)
                {
                    Volatile.Write(ref fullReadWanted, 1); // the rest at the next round, from the oldest again
                }

                return markers; // what the watch passed on meanwhile woke the next round itself
            }
            catch (Exception)
            {
                Volatile.Write(ref fullReadWanted, 1);
                throw;
            }
        }

        var seen = Volatile.Read(ref fullReadRevision);
        var taken = new List<OutboxMarker>();
        while (taken.Count < WebhookDeliveries.MaxMarkersPerRound && watchedMarkers.TryDequeue(out var watched))
        {
            Interlocked.Decrement(ref watchedCount);
            if (watched.Revision > seen)
            {
                taken.Add(watched.Marker);
            }
        }

        WakeIfWatchedWait();
        return taken;
    }

    /// <summary>A burst: what the watch passed on and this round did not take goes at the next round, not after an
    /// idle pause.</summary>
    private void WakeIfWatchedWait()
    {
        if (!watchedMarkers.IsEmpty)
        {
            Wake();
        }
    }

    /// <summary>Forgets what the watch passed on: a new leadership starts with a full read.</summary>
    private void ResetOutboxFeed()
    {
        while (watchedMarkers.TryDequeue(out _))
        {
            Interlocked.Decrement(ref watchedCount);
        }

        Volatile.Write(ref fullReadWanted, 1);
        Volatile.Write(ref fullReadRevision, 0);
    }
}

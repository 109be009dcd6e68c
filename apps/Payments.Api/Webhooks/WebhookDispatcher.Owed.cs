using System.Diagnostics.Metrics;
using Etcdserverpb;
using Payments.Etcd;
using Payments.Telemetry;

namespace Payments.Api.Webhooks;

/// <summary>The bound on deliveries owed (<see cref="WebhookOptions.MaxOwedDeliveries"/>). An endpoint that is down
/// owes one delivery per event for <see cref="WebhookOptions.RetryFor"/> (72 h): one merchant's receiver down over a
/// weekend at 100 events a second owed ~26 million, several GB, past etcd's quota — and out of space, etcd refuses every
/// write of the region, every merchant's payments with them. Past the bound, deliveries whose first attempt failed (or
/// could not start, the endpoint busy) are not kept for retries; their events stay in <c>GET /v1/events</c> for
/// merchants to catch up from. The bound is global, not per merchant: fairness gives way to keeping the region up.</summary>
public sealed partial class WebhookDispatcher
{
    /// <summary>How often the owed deliveries are counted in etcd (a count-only range) while markers are settled;
    /// between counts the dispatcher adds what it wrote.</summary>
    public static readonly TimeSpan OwedCountInterval = TimeSpan.FromSeconds(30);

    private static readonly Counter<long> OwedDropped = PaymentsTelemetry.Meter.CreateCounter<long>(
        "payments.webhooks.owed_dropped", description: "failed first deliveries not kept for retries: the owed deliveries were at Webhooks:MaxOwedDeliveries");

    private long owedCount;
    private long owedCountedAt = long.MinValue;
    private long owedFullLoggedAt = long.MinValue;

    /// <summary><paramref name="settled"/>, without the deliveries they owe when the bound is reached.</summary>
    private async Task<List<SettledMarker>> BoundOwedAsync(List<SettledMarker> settled, CancellationToken cancellationToken)
    {
        var owing = settled.Sum(marker => marker.Owed.Count);
        if (owing == 0)
        {
            return settled;
        }

        if (owedCountedAt == long.MinValue || time.GetElapsedTime(owedCountedAt) >= OwedCountInterval)
        {
            try
            {
                var root = deliveries.DueRoot;
                var counted = await EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(new RangeRequest
                {
                    Key = EtcdBytes.Key(root), RangeEnd = EtcdBytes.PrefixEnd(root), CountOnly = true,
                }, cancellationToken: token), cancellationToken);
                (owedCount, owedCountedAt) = (counted.Count, time.GetTimestamp());
            }
            catch (Grpc.Core.RpcException) when (!cancellationToken.IsCancellationRequested)
            {
                // Not counted now: the last count (and what was added since) stands.
            }
        }

        if (owedCount + owing <= options.MaxOwedDeliveries)
        {
            owedCount += owing; // written with the markers' settlement
            return settled;
        }

        OwedDropped.Add(owing);
        if (owedFullLoggedAt == long.MinValue || time.GetElapsedTime(owedFullLoggedAt) >= OwedCountInterval)
        {
            owedFullLoggedAt = time.GetTimestamp();
            LogFault($"{owedCount} webhook deliveries owed, the bound is {options.MaxOwedDeliveries}: failed first attempts are not retried until fewer are owed (their events stay in GET /v1/events; metric payments.webhooks.owed_dropped)");
        }

        return [.. settled.Select(marker => marker with { Owed = [] })];
    }
}

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
/// merchants to catch up from. Within the bound each merchant keeps at most its share
/// (<see cref="WebhookOptions.OwedPerMerchant"/>): a probe's merchant with failing endpoints filled the bound and every
/// other merchant's failed deliveries went unretried for as long as it kept it full. The share is counted in memory by
/// the dispatcher in charge, from when it took charge: what a merchant owed before (kept by an earlier one) is counted
/// in the global bound only, so each change of the dispatcher in charge (a rollout of the API) lets a merchant add up to
/// another share; a count in etcd per merchant would be one more write per failed delivery and per ended one.</summary>
public sealed partial class WebhookDispatcher
{
    /// <summary>How often the owed deliveries are counted in etcd (a count-only range) while markers are settled;
    /// between counts the dispatcher adds what it wrote.</summary>
    public static readonly TimeSpan OwedCountInterval = TimeSpan.FromSeconds(30);

    private static readonly Counter<long> OwedDropped = PaymentsTelemetry.Meter.CreateCounter<long>(
        "payments.webhooks.owed_dropped", description: "failed first deliveries not kept for retries: the owed deliveries were at Webhooks:MaxOwedDeliveries");

    private readonly Payments.ServiceDefaults.BoundedCounts<string> owedByMerchant = new(StringComparer.Ordinal);
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
            var kept = KeepMerchantShares(settled);
            owedCount += kept.Sum(marker => marker.Owed.Count); // written with the markers' settlement
            return kept;
        }

        OwedDropped.Add(owing);
        if (owedFullLoggedAt == long.MinValue || time.GetElapsedTime(owedFullLoggedAt) >= OwedCountInterval)
        {
            owedFullLoggedAt = time.GetTimestamp();
            LogFault($"{owedCount} webhook deliveries owed, the bound is {options.MaxOwedDeliveries}: failed first attempts are not retried until fewer are owed (their events stay in GET /v1/events; metric payments.webhooks.owed_dropped)");
        }

        return [.. settled.Select(marker => marker with { Owed = [] })];
    }

    /// <summary><paramref name="settled"/> without the owed deliveries of a merchant past its share.</summary>
    private List<SettledMarker> KeepMerchantShares(List<SettledMarker> settled)
    {
        var share = options.OwedPerMerchant;
        var dropped = 0;
        string? full = null;
        var kept = new List<SettledMarker>(settled.Count);
        foreach (var marker in settled)
        {
            var owed = new List<(WebhookDelivery Delivery, DateTimeOffset Due)>(marker.Owed.Count);
            foreach (var item in marker.Owed)
            {
                if (owedByMerchant.TryTake(item.Delivery.MerchantId, share))
                {
                    owed.Add(item);
                }
                else
                {
                    (dropped, full) = (dropped + 1, item.Delivery.MerchantId);
                }
            }

            kept.Add(owed.Count == marker.Owed.Count ? marker : marker with { Owed = owed });
        }

        if (dropped > 0)
        {
            OwedDropped.Add(dropped);
            if (owedFullLoggedAt == long.MinValue || time.GetElapsedTime(owedFullLoggedAt) >= OwedCountInterval)
            {
                owedFullLoggedAt = time.GetTimestamp();
                LogFault($"merchant {full} owes {share} webhook deliveries, its share of Webhooks:MaxOwedDeliveries: its failed first attempts are not retried until it owes fewer (their events stay in GET /v1/events; metric payments.webhooks.owed_dropped)");
            }
        }

        return kept;
    }

    /// <summary>An owed delivery ended (delivered, given up, or moot): its merchant owes one fewer.</summary>
    private void OwedEnded(string merchantId) => owedByMerchant.GiveBack(merchantId);

    /// <summary>Settled markers whose write may not have committed: their owed deliveries leave their merchants' shares.</summary>
    private void OwedNotKept(List<SettledMarker> settled)
    {
        foreach (var item in settled.SelectMany(marker => marker.Owed))
        {
            OwedEnded(item.Delivery.MerchantId);
        }
    }

    /// <summary>A dispatcher taking charge counts shares afresh: what it counted before it lost charge may have ended since.</summary>
    private void ForgetOwedShares() => owedByMerchant.Clear();
}

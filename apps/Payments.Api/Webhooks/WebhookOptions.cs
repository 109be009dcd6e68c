namespace Payments.Api.Webhooks;

/// <summary>Configuration section <c>Webhooks</c>: how payment events reach merchants' endpoints.</summary>
public sealed class WebhookOptions
{
    public const string Section = "Webhooks";

    /// <summary>Deliver webhooks from this replica (one replica delivers at a time, under a lock). Endpoints and
    /// <c>GET /v1/events</c> work either way, and the lock's holder trims either way: events after their retention, and
    /// with delivery off the outbox's markers after <see cref="RetryFor"/> (turned back on within it, they are sent).</summary>
    public bool Deliver { get; set; } = true;

    /// <summary>Allow endpoints on this machine's loopback (localhost, 127.0.0.0/8, ::1), over plain http too.
    /// Development only (the local system and tests receive on 127.0.0.1); private, link-local (the cloud's metadata
    /// service) and other non-public addresses stay refused even then. Never in a cluster: there it would let a
    /// merchant aim the API at its own pod (server-side request forgery).</summary>
    public bool AllowLoopbackTargets { get; set; }

    /// <summary>How long a receiver has to answer one delivery.</summary>
    public TimeSpan DeliveryTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a delivery is retried (exponential backoff, capped at <see cref="MaxBackoff"/>) before it is
    /// given up; at least 24 h (shorter only with <see cref="AllowLoopbackTargets"/>, i.e. in development and tests). The event stays readable in <c>GET /v1/events</c> for <see cref="EventRetention"/>.</summary>
    public TimeSpan RetryFor { get; set; } = TimeSpan.FromHours(72);

    /// <summary>The first retry's pause (null: <see cref="WebhookDispatcher.FirstBackoff"/>); shorter only in development.</summary>
    public TimeSpan? FirstBackoff { get; set; }

    /// <summary>Longest pause between two attempts of one delivery.</summary>
    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromHours(1);

    /// <summary>How long events stay in etcd for <c>GET /v1/events</c>; at least <see cref="RetryFor"/> plus
    /// <see cref="RetentionMargin"/>. A delivery's retries run for <see cref="RetryFor"/> from its first attempt, not
    /// from the event: with retention equal to it, a dispatcher off or behind for hours left its deliveries that much
    /// less time before their event was trimmed.</summary>
    public TimeSpan EventRetention { get; set; } = TimeSpan.FromDays(4);

    /// <summary>How much longer than the retries an event is kept, at least: a day of delivery turned off or behind.</summary>
    public static readonly TimeSpan RetentionMargin = TimeSpan.FromHours(24);

    /// <summary>Deliveries to one endpoint in flight at once: a slow receiver is not flooded, and does not hold up others.</summary>
    public int MaxConcurrencyPerEndpoint { get; set; } = 4;

    /// <summary>Deliveries in flight at once, over all endpoints.</summary>
    public int MaxInFlight { get; set; } = 64;

    /// <summary>Deliveries of one merchant in flight at once, over its endpoints (null: a quarter of
    /// <see cref="MaxInFlight"/>, at least 1), so that one merchant's slow receivers cannot take every slot from the
    /// others.</summary>
    public int? MaxInFlightPerMerchant { get; set; }

    /// <summary>Deliveries owed (first attempt failed, retries pending) at most, over all merchants: about 300 bytes
    /// each in etcd, so the default takes ~300 MB of the chart's 6 GiB quota. Past it a failed first attempt is not
    /// kept for retries (<see cref="WebhookDispatcher"/>, "owed"); its event stays in <c>GET /v1/events</c>.</summary>
    public int MaxOwedDeliveries { get; set; } = 1_000_000;

    /// <summary>Deliveries one merchant may owe at most (null: a quarter of <see cref="MaxOwedDeliveries"/>, at least
    /// 1), as the dispatcher in charge has counted them since it took charge: one merchant whose endpoints all fail
    /// cannot take the whole bound and leave every other merchant's failed deliveries unretried (a probe).</summary>
    public int? MaxOwedPerMerchant { get; set; }

    /// <summary><see cref="MaxOwedPerMerchant"/> as it applies.</summary>
    public int OwedPerMerchant => MaxOwedPerMerchant ?? Math.Max(1, MaxOwedDeliveries / 4);

    /// <summary><see cref="MaxInFlightPerMerchant"/> as it applies.</summary>
    public int InFlightPerMerchant => MaxInFlightPerMerchant ?? Math.Max(1, MaxInFlight / 4);

    /// <summary>The longest <see cref="RetryFor"/> and <see cref="EventRetention"/> (the chart's bounds too): events and
    /// owed deliveries stay in etcd that long, so its size grows with them (an audit: only minimums were checked).</summary>
    public static readonly TimeSpan MaxRetryFor = TimeSpan.FromDays(30), MaxEventRetention = TimeSpan.FromDays(90);

    public WebhookOptions Validate()
    {
        if (RetryFor < TimeSpan.FromHours(24) && !AllowLoopbackTargets)
        {
            throw new InvalidOperationException("Webhooks:RetryFor must be at least 24 hours (merchants expect a day's outage to lose nothing).");
        }

        if (RetryFor > MaxRetryFor || EventRetention > MaxEventRetention || MaxBackoff > RetryFor)
        {
            throw new InvalidOperationException(
                $"Webhooks: RetryFor at most {MaxRetryFor.TotalDays} days, EventRetention at most {MaxEventRetention.TotalDays} days, MaxBackoff at most RetryFor (events stay in etcd that long).");
        }

        if (EventRetention < RetryFor + RetentionMargin)
        {
            throw new InvalidOperationException(
                "Webhooks:EventRetention must be at least Webhooks:RetryFor plus a day: a delivery's retries start at its first attempt, which may come late.");
        }

        if (DeliveryTimeout <= TimeSpan.Zero || DeliveryTimeout > TimeSpan.FromSeconds(30) || MaxBackoff <= TimeSpan.Zero
            || MaxConcurrencyPerEndpoint is < 1 or > 64 || MaxInFlight is < 1 or > 1024 || InFlightPerMerchant < 1 || InFlightPerMerchant > MaxInFlight
            || MaxOwedDeliveries < 0 || OwedPerMerchant < 1)
        {
            throw new InvalidOperationException(
                "Webhooks: DeliveryTimeout 0-30 s, MaxBackoff > 0, MaxConcurrencyPerEndpoint 1-64, MaxInFlight 1-1024, MaxInFlightPerMerchant 1-MaxInFlight, MaxOwedDeliveries 0 or more, MaxOwedPerMerchant 1 or more.");
        }

        return this;
    }
}

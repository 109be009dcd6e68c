using Payments.Merchants;
using Payments.Orchestrator.Client.Models;

namespace Payments.Api.Apis;

/// <summary>Settings of the API (configuration section <c>Payments</c>; etcd's are <see cref="Payments.Etcd.EtcdOptions"/>).</summary>
public sealed class ApiOptions
{
    public TimeSpan ApprovalTimeout { get; set; } = TimeSpan.FromHours(24);

    /// <summary>The orchestrator's base URL (its internal payment endpoints): its Dapr sidecar's invocation URL on
    /// Kubernetes, its own address locally.</summary>
    public string? OrchestratorUrl { get; set; }

    public static readonly TimeSpan OrchestratorCallTimeout = TimeSpan.FromSeconds(10);

    /// <summary>How long before its approval deadline a payment stops taking decisions: the bound of the call that hands
    /// a decision to the saga (<see cref="OrchestratorCallTimeout"/>), or a quarter of a shorter deadline — so that a
    /// decision answered 202 reaches the saga before its wait ends.</summary>
    public static TimeSpan DecisionMargin(TimeSpan approvalTimeout) =>
        approvalTimeout / 4 < OrchestratorCallTimeout ? approvalTimeout / 4 : OrchestratorCallTimeout;

    /// <summary>The ledger service's base URL, likewise.</summary>
    public string? LedgerUrl { get; set; }

    /// <summary>Per call to the ledger. Shorter than the public edge's bound (30 s) and the ingress's (60 s) with room for
    /// a deposit's two calls, so a ledger that does not answer gets the API's own 503 naming it: at 30 s, a frozen
    /// ledger was answered by the edge ("no API replica answered"), pointing on-call at the API (a fault probe). A call
    /// given up may still apply: the retry with the same Idempotency-Key replays it.</summary>
    public static readonly TimeSpan LedgerCallTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Requests per second per API key across all replicas (token bucket; bursts up to twice this).</summary>
    public int RequestsPerSecondPerKey { get; set; } = 500;

    /// <summary>How many API replicas share <see cref="RequestsPerSecondPerKey"/> (the chart sets its replica count).</summary>
    public int Replicas { get; set; } = 1;

    /// <summary>This replica's share of a key's quota (at least 1 request per second).</summary>
    public int RequestsPerSecondPerKeyPerReplica => Math.Max(1, (int)Math.Ceiling(RequestsPerSecondPerKey / (double)Replicas));

    /// <summary>Requests per second from one client address that present no key this replica already knows: they
    /// are limited before the key is looked up in etcd (bursts up to twice this).</summary>
    public int UnauthenticatedRequestsPerSecondPerAddress { get; set; } = 20;

    /// <summary>This replica's share of an address's budget (at least 1 per second), as for a key's: each replica kept
    /// the whole budget, so an address had it once per replica.</summary>
    public int UnauthenticatedRequestsPerSecondPerAddressPerReplica =>
        Math.Max(1, (int)Math.Ceiling(UnauthenticatedRequestsPerSecondPerAddress / (double)Replicas));

    /// <summary>Networks whose X-Forwarded-For is believed (the edge, the ingress controller); loopback always is.</summary>
    public IList<string> TrustedProxyNetworks { get; } = [];

    /// <summary>Payments of one merchant not yet finished (including those awaiting review) at most; past it a new
    /// payment gets 429 with Retry-After.</summary>
    public int MaxPaymentsInFlightPerMerchant { get; set; } = 1_000;

    /// <summary>Refusals (4xx, nothing written) kept as their Idempotency-Key's answer per merchant per minute across
    /// the replicas, ten times that from all merchants together (<see cref="Idempotency.RefusalsKept"/>).</summary>
    public int RefusalsKeptPerMerchantPerMinute { get; set; } = 60;

    /// <summary>This replica's share of <see cref="RefusalsKeptPerMerchantPerMinute"/> (at least 1).</summary>
    public int RefusalsKeptPerMerchantPerMinutePerReplica => Math.Max(1, (int)Math.Ceiling(RefusalsKeptPerMerchantPerMinute / (double)Replicas));

    /// <summary>Accounts one merchant may open at most; past it 409 <c>account-limit-reached</c>. Every account is a
    /// few etcd keys kept for good (docs/storage.md), so without a bound one merchant's key opening accounts in a loop
    /// (500 requests per second) filled etcd's quota within hours, and every tenant's payments stopped.</summary>
    public long MaxAccountsPerMerchant { get; set; } = 100_000;

    /// <summary>Refuse <c>/v1</c> and <c>/admin</c> requests that reached the entrance over plain HTTP (its
    /// <c>X-Forwarded-Proto: http</c>): 403 <c>https-required</c>. On where an entrance terminates TLS (the chart sets it
    /// with an ingress or HTTPRoute). A redirect to https instead was followed silently by clients — curl, HTTP
    /// libraries — so a merchant configured with http:// sent its key in cleartext on every request and never knew.</summary>
    public bool RequireHttps { get; set; }

    /// <summary>Merchants' requests one replica serves at once at most (status waits aside), one merchant's at most a
    /// quarter of them; past it a request gets 503 with Retry-After at once (<see cref="Limits.RequestsInFlight"/>).</summary>
    public int MaxRequestsInFlight { get; set; } = 2_048;

    /// <summary>Which keys this deployment issues and accepts: <c>live</c> or <c>test</c> (<see cref="ApiKeyModes"/>).</summary>
    public string KeyMode { get; set; } = ApiKeyModes.Test;

    public ApiOptions Validate()
    {
        if (Replicas < 1 || RequestsPerSecondPerKey < 1 || UnauthenticatedRequestsPerSecondPerAddress < 1 || MaxPaymentsInFlightPerMerchant < 1
            || MaxAccountsPerMerchant < 1 || MaxRequestsInFlight < 1 || RefusalsKeptPerMerchantPerMinute < 1)
        {
            throw new InvalidOperationException(
                "Payments:Replicas, RequestsPerSecondPerKey, UnauthenticatedRequestsPerSecondPerAddress, MaxPaymentsInFlightPerMerchant, MaxAccountsPerMerchant, MaxRequestsInFlight and RefusalsKeptPerMerchantPerMinute must be at least 1.");
        }

        if (!ApiKeyModes.IsKnown(KeyMode))
        {
            throw new InvalidOperationException($"Payments:KeyMode must be '{ApiKeyModes.Live}' or '{ApiKeyModes.Test}', not '{KeyMode}'.");
        }

        foreach (var network in TrustedProxyNetworks)
        {
            if (!System.Net.IPNetwork.TryParse(network, out _))
            {
                throw new InvalidOperationException($"Payments:TrustedProxyNetworks: '{network}' is not a network in CIDR notation (e.g. 10.0.0.0/8).");
            }
        }

        PaymentInput.CheckApprovalTimeout(ApprovalTimeout);
        if (string.IsNullOrWhiteSpace(LedgerUrl) || string.IsNullOrWhiteSpace(OrchestratorUrl))
        {
            throw new InvalidOperationException(
                "Payments:LedgerUrl and Payments:OrchestratorUrl are required: the API reaches the ledger and the saga through them.");
        }

        return this;
    }
}

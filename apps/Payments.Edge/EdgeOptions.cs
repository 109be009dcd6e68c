namespace Payments.Edge;

/// <summary>Configuration section <c>Edge</c>. <c>Backends</c>: the API replicas (comma-separated base URLs).</summary>
public sealed class EdgeOptions
{
    public const int MaxBackends = 64;

    public string Backends { get; set; } = string.Empty;

    /// <summary>How often each replica's <c>/readyz</c> is probed (active health check).</summary>
    public TimeSpan ProbeInterval { get; set; } = TimeSpan.FromSeconds(2);

    public TimeSpan ProbeTimeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>A replica whose connections fail (passive health check) gets no traffic for this long.</summary>
    public TimeSpan ReactivationPeriod { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Largest request body the edge forwards: the public API's own limit (16 KiB, its <c>RequestBody.MaxBytes</c>;
    /// a functional test checks they agree). Enforced here too, so a larger body gets 413 problem+json from the edge
    /// instead of a connection the API closes mid-upload (which a proxy can only report as 502).</summary>
    public int MaxRequestBodyBytes { get; set; } = 16 * 1024;

    /// <summary>Per proxied request, bounded: the API itself answers within its own timeouts.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The longest status wait a client may ask the API for (<c>GET /v1/payments/{id}?wait=</c>, the API's
    /// <c>PaymentStatusWaits.MaxWaitSeconds</c>; a functional test checks they agree): such a request gets it on top
    /// of <see cref="RequestTimeout"/>.</summary>
    public static readonly TimeSpan MaxStatusWait = TimeSpan.FromSeconds(30);

    /// <summary>Client connections open at once, over every address: past it Kestrel refuses new ones. Each costs the
    /// edge up to two file descriptors (the client's and, while forwarding, one to a replica): this keeps it well within
    /// the run command's limit and a container's, so the process never runs out of them (it crashed when it did).</summary>
    public int MaxConnections { get; set; } = 6_000;

    /// <summary>Client connections open at once from one address (an IPv6 client per /64): one client cannot take
    /// <see cref="MaxConnections"/> alone. Far above what a well-behaved client opens (the run command's demo at most
    /// 256 workers, a connection each).</summary>
    public int MaxConnectionsPerAddress { get; set; } = 1_000;

    /// <summary>How long an idle client connection is kept open (Kestrel's default is 130 s: an idle connection cost
    /// an attacker nothing to keep).</summary>
    public TimeSpan KeepAliveTimeout { get; set; } = TimeSpan.FromSeconds(15);

    public const int MaxMaxConnections = 100_000;

    /// <summary>Refuses connection bounds that are none: every one has a limit.</summary>
    public EdgeOptions Validate() =>
        MaxConnections is < 1 or > MaxMaxConnections
            ? throw new InvalidOperationException($"Edge:MaxConnections is {MaxConnections}; use 1 to {MaxMaxConnections}.")
        : MaxConnectionsPerAddress < 1 || MaxConnectionsPerAddress > MaxConnections
            ? throw new InvalidOperationException($"Edge:MaxConnectionsPerAddress is {MaxConnectionsPerAddress}; use 1 to Edge:MaxConnections ({MaxConnections}).")
        : KeepAliveTimeout <= TimeSpan.Zero || KeepAliveTimeout > TimeSpan.FromMinutes(5)
            ? throw new InvalidOperationException($"Edge:KeepAliveTimeout is {KeepAliveTimeout}; use more than 0 and at most 5 minutes.")
        : this;

    public IReadOnlyList<Uri> ParseBackends()
    {
        var backends = Backends.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(value => Uri.TryCreate(value, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"
                ? uri
                : throw new InvalidOperationException($"Edge:Backends: '{value}' is not an absolute http(s) URL."))
            .ToArray();
        if (backends.Length is 0 or > MaxBackends)
        {
            throw new InvalidOperationException($"Edge:Backends must name 1 to {MaxBackends} API replicas (got {backends.Length}).");
        }

        return backends;
    }
}

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

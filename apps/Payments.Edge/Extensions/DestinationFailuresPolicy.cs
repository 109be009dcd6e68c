using System.Net.Http;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace Payments.Edge.Extensions;

/// <summary>The edge's passive health check: a replica is taken out after <see cref="Threshold"/> failures in a row
/// that are the replica's own (it refused or dropped the connection, timed out, or broke its response), for
/// <see cref="EdgeOptions.ReactivationPeriod"/>; a request it answers starts the count again.</summary>
/// <remarks>YARP's own policy (TransportFailureRate) counts every forwarding error, the caller's included: a request
/// whose client gave up, whose body broke off, or whose header HttpClient cannot send (a UTF-8 value) counted against
/// the replica. A dozen such requests from anyone, no key needed, took both replicas out — the edge then fell back to
/// sending to both ("panic"), so a replica that really died went on getting traffic — and kept them out for its
/// 60-second detection window rather than the configured reactivation period.</remarks>
public sealed class DestinationFailuresPolicy(IDestinationHealthUpdater updater, EdgeOptions options) : IPassiveHealthCheckPolicy
{
    public const string PolicyName = "DestinationFailures";

    /// <summary>Failures of the replica's own in a row that take it out.</summary>
    public const int Threshold = 3;

    private readonly ConditionalWeakTable<DestinationState, StrongBox<int>> failures = new();

    public string Name => PolicyName;

    public void RequestProxied(HttpContext context, ClusterState cluster, DestinationState destination)
    {
        ArgumentNullException.ThrowIfNull(context);
        var error = context.Features.Get<IForwarderErrorFeature>();
        var count = failures.GetValue(destination, _ => new StrongBox<int>());
        if (error is null)
        {
            // Only the count starts again: a replica taken out stays out for its period (a request that was in
            // flight when it was taken out must not bring it back); YARP's reactivation and the active probe decide.
            Interlocked.Exchange(ref count.Value, 0);
        }
        else if (IsTheDestinations(error) && Interlocked.Increment(ref count.Value) >= Threshold)
        {
            Interlocked.Exchange(ref count.Value, 0);
            updater.SetPassive(cluster, destination, DestinationHealth.Unhealthy, options.ReactivationPeriod);
        }
    }

    /// <summary>Whether the edge's own bound on the request (the route's timeout policy) ran out while it was forwarded:
    /// YARP reports that as the client gone (<see cref="ForwarderError.RequestCanceled"/>, dotnet/yarp#2662). It is not
    /// counted against the replica: a replica slow under load is not a dead one, and taking it out doubles its peer's
    /// load; a frozen one fails the active probe (1 s) and is taken out by that.</summary>
    public static bool EdgeTimedOut(HttpContext context) =>
        context.Features.Get<IForwarderErrorFeature>() is { Error: ForwarderError.RequestCanceled }
        && context.Features.Get<Microsoft.AspNetCore.Http.Timeouts.IHttpRequestTimeoutFeature>() is { RequestTimeoutToken.IsCancellationRequested: true };

    /// <summary>Whether the failure says something about the replica (not about the caller or the request).</summary>
    public static bool IsTheDestinations(IForwarderErrorFeature error) => error.Error switch
    {
        ForwarderError.RequestTimedOut or ForwarderError.RequestBodyDestination or ForwarderError.ResponseHeaders
            or ForwarderError.ResponseBodyDestination or ForwarderError.UpgradeRequestDestination
            or ForwarderError.UpgradeResponseDestination => true,
        // Sending failed: the replica's when the connection did (refused, reset, ended), not when the request itself
        // could not be written (e.g. a header value HttpClient refuses).
        ForwarderError.Request => IsConnectionFailure(error.Exception),
        _ => false,
    };

    private static bool IsConnectionFailure(Exception? exception)
    {
        for (var current = exception; current is not null; current = current.InnerException)
        {
            if (current is SocketException or IOException
                || current is HttpRequestException
                {
                    HttpRequestError: HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError
                        or HttpRequestError.SecureConnectionError or HttpRequestError.ResponseEnded,
                })
            {
                return true;
            }
        }

        return false;
    }
}

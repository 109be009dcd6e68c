extern alias Edge;

using System.Net.Sockets;
using Edge::Payments.Edge;
using Edge::Payments.Edge.Extensions;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace Payments.Api.FunctionalTests;

/// <summary>The edge's passive health policy on its own: which forwarding failures count against a replica. (YARP's
/// health updater is internal to YARP, so what the policy decides is recorded by <see cref="RecordingUpdater"/>; the
/// policy inside the real edge is exercised by <see cref="EdgeLoadBalancingTests"/>.)</summary>
public sealed class DestinationFailuresPolicyTests
{
    [Fact]
    public void OnlyTheReplicasOwnFailures_TakeItOut_AndAnAnswerResetsTheCount()
    {
        var updater = new RecordingUpdater();
        var policy = new DestinationFailuresPolicy(updater, new EdgeOptions());
        var (cluster, destination) = (new ClusterState("api"), new DestinationState("api-0"));
        var callersFaults = new (ForwarderError, Exception?)[]
        {
            (ForwarderError.RequestCanceled, new OperationCanceledException()),
            (ForwarderError.RequestBodyClient, new IOException("client went away")),
            (ForwarderError.ResponseBodyClient, new IOException("client went away")),
            (ForwarderError.RequestCreation, new InvalidOperationException("bad request")),
            (ForwarderError.Request, new HttpRequestException("Request headers must contain only ASCII characters.")),
        };
        foreach (var (error, exception) in Enumerable.Repeat(callersFaults, 4).SelectMany(faults => faults))
        {
            policy.RequestProxied(Failed(error, exception), cluster, destination);
        }

        Assert.DoesNotContain(DestinationHealth.Unhealthy, updater.Passive);

        var refused = new HttpRequestException(HttpRequestError.ConnectionError, "Connection refused", new SocketException((int)SocketError.ConnectionRefused));
        policy.RequestProxied(Failed(ForwarderError.Request, refused), cluster, destination);
        policy.RequestProxied(Failed(ForwarderError.RequestTimedOut, new OperationCanceledException()), cluster, destination);
        policy.RequestProxied(new DefaultHttpContext(), cluster, destination); // answered: the count starts again
        policy.RequestProxied(Failed(ForwarderError.Request, refused), cluster, destination);
        policy.RequestProxied(Failed(ForwarderError.ResponseHeaders, null), cluster, destination);
        Assert.DoesNotContain(DestinationHealth.Unhealthy, updater.Passive);

        policy.RequestProxied(Failed(ForwarderError.Request, refused), cluster, destination);
        Assert.Equal(DestinationHealth.Unhealthy, updater.Passive[^1]);
        Assert.Equal(new EdgeOptions().ReactivationPeriod, updater.LastReactivation);
    }

    /// <summary>The edge's own timeout, which YARP reports as the client gone (RequestCanceled), is told apart from a
    /// client that left (the edge answers it 503 problem+json), but neither counts against the replica: a slow replica
    /// under load is not a dead one, and taking it out doubles its peer's load (a frozen one fails the active probe).</summary>
    [Fact]
    public void TheEdgesOwnTimeout_IsToldApart_ButNotCountedAgainstTheReplica()
    {
        var updater = new RecordingUpdater();
        var policy = new DestinationFailuresPolicy(updater, new EdgeOptions());
        var (cluster, destination) = (new ClusterState("api"), new DestinationState("api-0"));
        var left = Failed(ForwarderError.RequestCanceled, new OperationCanceledException());
        Assert.False(DestinationFailuresPolicy.EdgeTimedOut(left));
        for (var attempt = 0; attempt < 2 * DestinationFailuresPolicy.Threshold; attempt++)
        {
            var timedOut = Failed(ForwarderError.RequestCanceled, new OperationCanceledException());
            timedOut.Features.Set<Microsoft.AspNetCore.Http.Timeouts.IHttpRequestTimeoutFeature>(new FiredTimeout());
            Assert.True(DestinationFailuresPolicy.EdgeTimedOut(timedOut));
            policy.RequestProxied(timedOut, cluster, destination);
        }

        Assert.Empty(updater.Passive);
    }

    private sealed class FiredTimeout : Microsoft.AspNetCore.Http.Timeouts.IHttpRequestTimeoutFeature
    {
        public CancellationToken RequestTimeoutToken { get; } = new(canceled: true);

        public void DisableTimeout()
        {
        }
    }

    private static DefaultHttpContext Failed(ForwarderError error, Exception? exception)
    {
        var context = new DefaultHttpContext();
        context.Features.Set<IForwarderErrorFeature>(new ErrorFeature(error, exception));
        return context;
    }

    private sealed record ErrorFeature(ForwarderError Error, Exception? Exception) : IForwarderErrorFeature;

    private sealed class RecordingUpdater : IDestinationHealthUpdater
    {
        public List<DestinationHealth> Passive { get; } = [];

        public TimeSpan LastReactivation { get; private set; }

        public void SetActive(ClusterState cluster, IEnumerable<NewActiveDestinationHealth> newHealthPairs) => throw new NotSupportedException();

        public void SetPassive(ClusterState cluster, DestinationState destination, DestinationHealth newHealth, TimeSpan reactivationPeriod)
        {
            Passive.Add(newHealth);
            LastReactivation = reactivationPeriod;
        }
    }
}

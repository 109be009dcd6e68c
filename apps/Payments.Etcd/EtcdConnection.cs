using dotnet_etcd;
using Etcdserverpb;
using Grpc.Core;
using Grpc.Net.Client;

namespace Payments.Etcd;

/// <summary>A connection to an etcd cluster that talks to one member at a time and moves to the next when that member
/// fails a call — the way etcd's own Go client pins an endpoint.</summary>
/// <remarks>
/// We do not use gRPC's round-robin balancer: a member frozen by SIGSTOP (or a GC pause, or a half-dead VM) still
/// accepts TCP connections, so the balancer keeps it "ready" and sends it every other call, each of which then hangs
/// until its deadline. Here every unary call gets a deadline (<see cref="CallTimeout"/>) unless it has one, and a
/// call that fails as unavailable, times out or breaks its connection moves the connection to the next member.
/// </remarks>
public sealed class EtcdConnection : IDisposable
{
    /// <summary>How long one unary etcd call may take before it fails with DeadlineExceeded (and we try another member).</summary>
    public static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan BackstopMargin = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan PingDelay = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan PingTimeout = TimeSpan.FromSeconds(2);
    private const int MaxEndpoints = 16;

    /// <summary>Sends of one call whose connection could not be opened (see <see cref="CallAsync{T}"/>), at most.</summary>
    public const int MaxConnectAttempts = 3;

    /// <summary>Sends of one call that etcd refused as "revision of auth store is old": users or roles changed between
    /// the request's authentication and its apply (the chart's bootstrap Job at every upgrade), which applied nothing.
    /// etcd's own client sends such a call again (client/v3 retry_interceptor.go, certificate authentication); refused,
    /// it failed a payment's step or the storage maintenance's pass (logged as a defect).</summary>
    public const int MaxAuthRevisionAttempts = 10;

    /// <summary>The wait before the n-th send again of such a call is n times this (at most 0.9 s in all, within the
    /// call's deadline).</summary>
    public static readonly TimeSpan AuthRevisionBackoff = TimeSpan.FromMilliseconds(20);

    /// <summary>etcd's ErrGRPCAuthOldRevision (api/v3rpc/rpctypes/error.go).</summary>
    public static bool IsAuthRevisionOld(RpcException exception) =>
        exception is { StatusCode: StatusCode.InvalidArgument, Status.Detail: "etcdserver: revision of auth store is old" };

    private const string ConnectTimeoutDetail = "could not connect to the etcd member in time";

    private readonly GrpcChannel[] channels;
    private readonly FailoverCallInvoker invoker;

    private EtcdConnection(string endpoints, GrpcChannel[] channels)
    {
        Endpoints = endpoints;
        this.channels = channels;
        invoker = new FailoverCallInvoker(channels.Select(channel => channel.CreateCallInvoker()).ToArray());
        Client = new EtcdClient(invoker);
        Kv = new KV.KVClient(invoker);
        Leases = new Lease.LeaseClient(invoker);
    }

    public string Endpoints { get; }

    /// <summary>dotnet-etcd's client over this connection, for the convenience calls (status, gets).</summary>
    public EtcdClient Client { get; }

    /// <summary>The raw KV service: transactions with compares, the ledger's only way to write.</summary>
    public KV.KVClient Kv { get; }

    /// <summary>The raw lease service: grant, revoke and the keep-alive stream.</summary>
    public Lease.LeaseClient Leases { get; }

    /// <summary>The watch service: long-lived streams (<see cref="EtcdPrefixWatch"/>).</summary>
    public Watch.WatchClient Watches => new(invoker);

    /// <summary>The auth service (users, roles, enabling auth): set-up only (<see cref="EtcdRbac"/>).</summary>
    public Auth.AuthClient Auth => new(invoker);

    /// <summary>Which member calls go to now (an index into the endpoint list).</summary>
    public int CurrentEndpoint => invoker.Current;

    /// <summary>How many members the connection knows (the endpoints it was created with).</summary>
    public int MemberCount => channels.Length;

    /// <summary>The maintenance service of one member, not of "the current one": status, defragmentation and alarms
    /// act on the member that receives them (etcd's Maintenance API), so maintenance must pick its member itself.</summary>
    public Etcdserverpb.Maintenance.MaintenanceClient MemberMaintenance(int member) => new(channels[member]);

    /// <param name="endpoints">Comma-separated client URLs, e.g. <c>http://127.0.0.1:2379,http://127.0.0.1:22379</c>
    /// (<c>https://</c> with <paramref name="tls"/>).</param>
    /// <param name="tls">The CA and this client's certificate; null: plaintext (an etcd that trusts its network).</param>
    public static EtcdConnection Create(string endpoints, EtcdTls? tls = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(endpoints);
        var urls = endpoints.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(urls.Length, MaxEndpoints, nameof(endpoints));
        var channels = urls.Select(url => GrpcChannel.ForAddress(url, new GrpcChannelOptions
        {
            Credentials = tls is null ? ChannelCredentials.Insecure : ChannelCredentials.SecureSsl,
            // Left at false on purpose: with true, an exceeded deadline also surfaces as OperationCanceledException,
            // and the failover below could no longer tell a frozen member from a caller that gave up.
            ThrowOperationCanceledOnCancellation = false,
            HttpHandler = new SocketsHttpHandler
            {
                ConnectTimeout = ConnectTimeout,
                // Pings find a frozen member under long-lived streams (lease keep-alive) too.
                KeepAlivePingDelay = PingDelay,
                KeepAlivePingTimeout = PingTimeout,
                KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
                EnableMultipleHttp2Connections = true,
                SslOptions = tls?.ClientOptions() ?? new System.Net.Security.SslClientAuthenticationOptions(),
            },
        })).ToArray();
        return new EtcdConnection(endpoints, channels);
    }

    /// <summary>A backstop token for one call: fires a little after the call's own gRPC deadline (which is what moves
    /// the connection to another member), or when <paramref name="cancellationToken"/> does.</summary>
    public static CancellationTokenSource CallDeadline(CancellationToken cancellationToken)
    {
        var source = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        source.CancelAfter(CallTimeout + BackstopMargin);
        return source;
    }

    /// <summary>Runs one unary call with a backstop deadline and clear failure semantics: the caller's cancellation
    /// becomes <see cref="OperationCanceledException"/>; a call that timed out becomes RpcException DeadlineExceeded.</summary>
    /// <remarks>A call whose connection could not be opened in time never reached etcd, so it is sent again — to the
    /// next member, where the failed connect moved the connection — up to <see cref="MaxConnectAttempts"/> times
    /// within the same deadline: safe for any call, writes included, and it keeps one member slow to accept
    /// connections (two shared cores under load) from failing the caller.</remarks>
    public static async Task<T> CallAsync<T>(Func<CancellationToken, AsyncUnaryCall<T>> call, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(call);
        using var deadline = CallDeadline(cancellationToken);
        try
        {
            for (int attempt = 1, authAttempt = 1; ; )
            {
                try
                {
                    return await call(deadline.Token);
                }
                catch (RpcException exception) when (exception.StatusCode == StatusCode.Unavailable && exception.Status.Detail == ConnectTimeoutDetail
                                                     && attempt < MaxConnectAttempts && !deadline.IsCancellationRequested)
                {
                    attempt++; // not sent: try the next member
                }
                catch (RpcException exception) when (IsAuthRevisionOld(exception) && authAttempt < MaxAuthRevisionAttempts && !deadline.IsCancellationRequested)
                {
                    // Refused before it was applied, as users or roles changed meanwhile: send it again, a little later
                    // each time (a burst of changes, the bootstrap Job's, refused it again at once).
                    await Task.Delay(AuthRevisionBackoff * authAttempt++, deadline.Token);
                }
            }
        }
        catch (Exception exception) when (exception is RpcException or OperationCanceledException)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (deadline.IsCancellationRequested)
            {
                throw new RpcException(new Status(StatusCode.DeadlineExceeded, "etcd call timed out"));
            }

            throw;
        }
    }

    /// <summary>Readiness: true when the cluster answers a linearizable read (which needs a quorum) in time.</summary>
    /// <param name="probeKey">A key this client may read (with etcd auth on, a read outside the client's prefixes is
    /// refused, so the probe reads one of its own: every app reads its region's epoch).</param>
    public async Task<bool> IsReachableAsync(string probeKey, CancellationToken cancellationToken)
    {
        try
        {
            // A linearizable read: it succeeds only where a majority answers (a member cut off is not "reachable").
            await CallAsync(token => Kv.RangeAsync(new RangeRequest { Key = EtcdBytes.Key(probeKey), Limit = 1 }, cancellationToken: token), cancellationToken);
            return true;
        }
        catch (Exception exception) when (exception is RpcException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>Moves calls off <paramref name="failedEndpoint"/> (as read from <see cref="CurrentEndpoint"/> when a
    /// stream was opened): streams report their own failures, unary calls are observed automatically.</summary>
    public void MoveOff(int failedEndpoint) => invoker.MoveOn(failedEndpoint);

    public void Dispose()
    {
        Client.Dispose();
        foreach (var channel in channels)
        {
            channel.Dispose();
        }
    }

    /// <summary>Sends each call to the current member; a call that fails for a reason the member may be to blame for
    /// moves "current" to the next member, so the caller's retry goes elsewhere.</summary>
    private sealed class FailoverCallInvoker(CallInvoker[] members) : CallInvoker
    {
        private int current;

        public int Current => Volatile.Read(ref current);

        public override TResponse BlockingUnaryCall<TRequest, TResponse>(
            Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request)
        {
            var member = Current;
            try
            {
                return members[member].BlockingUnaryCall(method, host, WithDeadline(options), request);
            }
            catch (RpcException exception) when (MemberMayBeAtFault(exception.StatusCode))
            {
                MoveOn(member);
                throw;
            }
        }

        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(
            Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request)
        {
            var member = Current;
            var call = members[member].AsyncUnaryCall(method, host, WithDeadline(options), request);
            return new AsyncUnaryCall<TResponse>(
                ObserveAsync(call.ResponseAsync, member), call.ResponseHeadersAsync, call.GetStatus, call.GetTrailers, call.Dispose);
        }

        public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(
            Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) =>
            members[Current].AsyncServerStreamingCall(method, host, options, request);

        public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(
            Method<TRequest, TResponse> method, string? host, CallOptions options) =>
            members[Current].AsyncClientStreamingCall(method, host, options);

        public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(
            Method<TRequest, TResponse> method, string? host, CallOptions options) =>
            members[Current].AsyncDuplexStreamingCall(method, host, options);

        /// <summary>Streams (lease keep-alive) report their failures here, so the next stream opens on another member.</summary>
        public void MoveOn(int failedMember) =>
            Interlocked.CompareExchange(ref current, (failedMember + 1) % members.Length, failedMember);

        private async Task<TResponse> ObserveAsync<TResponse>(Task<TResponse> response, int member)
        {
            try
            {
                return await response;
            }
            catch (RpcException exception) when (MemberMayBeAtFault(exception.StatusCode))
            {
                MoveOn(member);
                throw;
            }
            catch (RpcException exception) when (IsConnectTimeout(exception))
            {
                // A frozen member behind a proxy that accepts TCP (Docker's published ports, a load balancer) hangs
                // in the TLS handshake; gRPC reports the handler's connect timeout as Cancelled. It is the member's
                // fault, and to callers it is what it means: unavailable, try again (elsewhere).
                MoveOn(member);
                throw new RpcException(new Status(StatusCode.Unavailable, ConnectTimeoutDetail, exception));
            }
        }

        private static bool IsConnectTimeout(RpcException exception)
        {
            if (exception.StatusCode != StatusCode.Cancelled)
            {
                return false;
            }

            for (var inner = exception.Status.DebugException; inner is not null; inner = inner.InnerException)
            {
                if (inner is TimeoutException)
                {
                    return true;
                }
            }

            return false;
        }

        private static CallOptions WithDeadline(CallOptions options) =>
            options.Deadline is null ? options.WithDeadline(DateTime.UtcNow + CallTimeout) : options;

        // etcd answers "no leader", "leader changed" and "request timed out" as Unavailable; a frozen member shows as
        // DeadlineExceeded; a dropped HTTP/2 connection as Internal or Unknown.
        private static bool MemberMayBeAtFault(StatusCode status) =>
            status is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Internal or StatusCode.Unknown;
    }
}

using dotnet_etcd;
using Etcdserverpb;
using Grpc.Core;
using Grpc.Net.Client;
using Grpc.Net.Client.Balancer;
using Grpc.Net.Client.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Payments.Etcd;

/// <summary>One gRPC channel to an etcd cluster, balanced round-robin over every member's client URL.</summary>
/// <remarks>We build the channel ourselves (rather than letting dotnet-etcd parse a connection string) for two
/// reasons: HTTP/2 keep-alive pings detect a member that is frozen but still holds its sockets open, so the
/// balancer stops sending it calls; and the raw lease stream is needed for a keep-alive whose loss we observe.</remarks>
public sealed class EtcdConnection : IDisposable
{
    /// <summary>How long one etcd call may take before we give up on it (and, for writes, re-read to learn the outcome).</summary>
    public static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan PingDelay = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan PingTimeout = TimeSpan.FromSeconds(2);

    private readonly GrpcChannel channel;
    private readonly ServiceProvider services;

    private EtcdConnection(GrpcChannel channel, ServiceProvider services, string endpoints)
    {
        this.channel = channel;
        this.services = services;
        Endpoints = endpoints;
        var invoker = channel.CreateCallInvoker();
        Client = new EtcdClient(invoker);
        Kv = new KV.KVClient(invoker);
        Leases = new Lease.LeaseClient(invoker);
    }

    public string Endpoints { get; }

    /// <summary>dotnet-etcd's client over this channel, for the convenience calls (status, leases, ranges).</summary>
    public EtcdClient Client { get; }

    /// <summary>The raw KV service: transactions with compares, the ledger's only way to write.</summary>
    public KV.KVClient Kv { get; }

    /// <summary>The raw lease service: grant, revoke and the keep-alive stream.</summary>
    public Lease.LeaseClient Leases { get; }

    /// <param name="endpoints">Comma-separated client URLs, e.g. <c>http://127.0.0.1:2379,http://127.0.0.1:22379</c>.</param>
    public static EtcdConnection Create(string endpoints)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(endpoints);
        var addresses = endpoints
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(url => new Uri(url, UriKind.Absolute))
            .Select(uri => new BalancerAddress(uri.Host, uri.Port))
            .ToArray();
        var serviceCollection = new ServiceCollection();
        serviceCollection.AddSingleton<ResolverFactory>(new StaticResolverFactory(_ => addresses));
        var services = serviceCollection.BuildServiceProvider();
        var channel = GrpcChannel.ForAddress("static:///etcd", new GrpcChannelOptions
        {
            Credentials = ChannelCredentials.Insecure,
            ServiceProvider = services,
            ServiceConfig = new ServiceConfig { LoadBalancingConfigs = { new RoundRobinConfig() } },
            HttpHandler = new SocketsHttpHandler
            {
                ConnectTimeout = ConnectTimeout,
                KeepAlivePingDelay = PingDelay,
                KeepAlivePingTimeout = PingTimeout,
                KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
                EnableMultipleHttp2Connections = true,
            },
        });
        return new EtcdConnection(channel, services, endpoints);
    }

    /// <summary>A token that fires after <see cref="CallTimeout"/> or when <paramref name="cancellationToken"/> does.</summary>
    public static CancellationTokenSource CallDeadline(CancellationToken cancellationToken)
    {
        var source = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        source.CancelAfter(CallTimeout);
        return source;
    }

    public void Dispose()
    {
        Client.Dispose();
        channel.Dispose();
        services.Dispose();
    }
}

using Etcdserverpb;
using Grpc.Core;
using Payments.Etcd;
using Payments.LocalCluster;

namespace Payments.Ledger.IntegrationTests;

/// <summary>etcd with TLS, client-certificate authentication and a role per app (issue 11, item 3), on a real member
/// started with its own throw-away CA: a client without the CA's certificate gets nothing, and a client with an
/// app's certificate reads and writes only that app's prefixes.</summary>
public sealed class SecureEtcdTests
{
    private const string Prefix = "/secure-test/";

    [Fact]
    public async Task WithoutACertificate_NothingIsServed_AndEachAppsCertificate_ReachesOnlyItsPrefixes()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var cancellationToken = timeout.Token;
        await using var cluster = await LocalEtcdCluster.StartAsync(1, progress: null, cancellationToken, secure: true);
        using (var root = cluster.ConnectAsRoot())
        {
            await EtcdRbac.EnableAsync(root, [
                new EtcdRole("api", [Prefix + "api/", Prefix + "idempotency/"], [Prefix + "region/"]),
                new EtcdRole("ledger", [Prefix + "ledger/"], [Prefix + "region/"]),
            ], cancellationToken);
            await PutAsync(root, Prefix + "region/epoch", cancellationToken); // root may write anywhere
        }

        // No TLS at all, and TLS with a certificate from another CA: refused before any key is read.
        using (var plaintext = EtcdConnection.Create(cluster.ClientEndpoints.Replace("https://", "http://", StringComparison.Ordinal)))
        {
            await Assert.ThrowsAsync<RpcException>(() => PutAsync(plaintext, Prefix + "api/x", cancellationToken));
        }

        var stranger = EtcdCertificates.Create(Path.Combine(cluster.Directory, "stranger")).Client("api");
        using (var impostor = EtcdConnection.Create(cluster.ClientEndpoints, stranger with { CaFile = cluster.Certificates!.CaFile }))
        {
            await Assert.ThrowsAsync<RpcException>(() => PutAsync(impostor, Prefix + "api/x", cancellationToken));
        }

        // The API's certificate: its own families read and written, the region epoch read only, the ledger not at all.
        using var api = EtcdConnection.Create(cluster.ClientEndpoints, cluster.Certificates!.Client("api"));
        await PutAsync(api, Prefix + "api/merchant", cancellationToken);
        await PutAsync(api, Prefix + "idempotency/key", cancellationToken);
        Assert.Equal(1L, await RangeAsync(api, Prefix + "region/epoch", cancellationToken));
        AssertDenied(await Assert.ThrowsAsync<RpcException>(() => PutAsync(api, Prefix + "ledger/accounts/a", cancellationToken)));
        AssertDenied(await Assert.ThrowsAsync<RpcException>(() => PutAsync(api, Prefix + "region/epoch", cancellationToken)));
        AssertDenied(await Assert.ThrowsAsync<RpcException>(() => RangeAsync(api, Prefix + "ledger/accounts/a", cancellationToken)));

        // The ledger's certificate writes the ledger and nothing of the API's.
        using var ledger = EtcdConnection.Create(cluster.ClientEndpoints, cluster.Certificates.Client("ledger"));
        await PutAsync(ledger, Prefix + "ledger/accounts/a", cancellationToken);
        AssertDenied(await Assert.ThrowsAsync<RpcException>(() => PutAsync(ledger, Prefix + "api/merchant", cancellationToken)));
    }

    private static void AssertDenied(RpcException exception) =>
        Assert.True(exception.Status.StatusCode == StatusCode.PermissionDenied, $"expected PermissionDenied, got {exception.Status}");

    private static Task<PutResponse> PutAsync(EtcdConnection connection, string key, CancellationToken cancellationToken) =>
        EtcdConnection.CallAsync(token => connection.Kv.PutAsync(
            new PutRequest { Key = EtcdBytes.Key(key), Value = EtcdBytes.Key("v") }, cancellationToken: token), cancellationToken);

    private static async Task<long> RangeAsync(EtcdConnection connection, string key, CancellationToken cancellationToken) =>
        (await EtcdConnection.CallAsync(token => connection.Kv.RangeAsync(new RangeRequest { Key = EtcdBytes.Key(key) }, cancellationToken: token), cancellationToken)).Count;
}

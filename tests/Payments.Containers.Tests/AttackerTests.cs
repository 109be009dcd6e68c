using Etcdserverpb;
using Grpc.Core;
using Payments.Domain;
using Payments.Etcd;
using Payments.Ledger.Contracts;
using Payments.LocalCluster;
using Payments.Orchestrator.Client.Gateway;
using Payments.Risk.Contracts;
using Payments.ServiceDefaults.Security;

namespace Payments.Containers.Tests;

/// <summary>Issue 11's attacker, with a foothold in the network: requests sent from inside other containers of the
/// running system, straight to the internal services' ports. Without the app token nothing answers; with the API's
/// identity (what a compromised API pod holds) the ledger moves money only as a deposit.</summary>
[Collection("containers")]
public sealed class AttackerTests(ContainerSystem system)
{
    private const int AppPort = 8080;

    [Fact]
    public async Task AContainerWithoutAToken_Gets401_FromLedgerRiskAndOrchestrator()
    {
        await system.WaitUntilReadyAsync();
        var funding = AccountId.ExternalFunding(Currency.Eur).Value;
        var mint = Transfer(funding, "attacker-account", 1_000_000);
        (string Host, string Method, string Path, string Body)[] probes =
        [
            ("ledger", "POST", LedgerRoutes.Prefix + "transfers", mint),
            ("ledger", "POST", LedgerRoutes.Prefix + "accounts", """{"id":"attacker-account","currency":"EUR","overdraftLimitMinor":0}"""),
            ("ledger", "GET", LedgerRoutes.Prefix + "accounts/attacker-account", ""),
            ("risk", "POST", RiskRoutes.Assess, """{"paymentId":"p-x","debtorAccountId":"a","creditorAccountId":"b","amountMinor":1,"currency":"EUR"}"""),
            ("orchestrator", "POST", HttpPaymentWorkflows.Route + "/p-x/approval", """{"approved":true,"reviewer":"attacker"}"""),
        ];
        // From the edge (a pod that holds no app token): no token, a trusted caller's name alone, or a forged token.
        Dictionary<string, string>[] credentials =
        [
            new(),
            new() { [ServiceIdentityExtensions.CallerHeader] = "api" },
            new() { [ServiceIdentityExtensions.TokenHeader] = "forged-token-forged-token-forged", [ServiceIdentityExtensions.CallerHeader] = "orchestrator" },
        ];

        foreach (var headers in credentials)
        {
            foreach (var (host, method, path, body) in probes)
            {
                Assert.Equal(401, await ContainerSystem.HttpFromAsync(system.Edge, host, AppPort, method, path, headers, body));
            }
        }

        // Nothing was minted: the attacker's account was never opened.
        Assert.Null(await system.LedgerStore.GetAccountAsync(AccountId.Parse("attacker-account"), CancellationToken.None));
    }

    [Fact]
    public async Task AContainerWithoutTheOperatorsToken_Gets401_FromTheFailoverAdminApi()
    {
        await system.WaitUntilReadyAsync();
        await system.FailoverAsync();
        var switchover = $$"""{"to":"{{ContainerSystem.FailoverPeerRegion}}"}""";
        (string Method, string Path, string Body)[] probes = [("POST", "/admin/v1/switchover", switchover), ("GET", "/admin/v1/region", "")];
        // No credential; a forged bearer token; another app's token (what a compromised pod holds) as a bearer token
        // and as the service-identity header with the failover service's name: none is the operator's.
        var orchestratorToken = system.AppToken(ServiceRoles.Orchestrator)!;
        Dictionary<string, string>[] credentials =
        [
            new(),
            new() { ["Authorization"] = "Bearer forged-token-forged-token-forged-token-0000" },
            new() { ["Authorization"] = "Bearer " + orchestratorToken },
            new() { [ServiceIdentityExtensions.TokenHeader] = orchestratorToken, [ServiceIdentityExtensions.CallerHeader] = ServiceRoles.Failover },
        ];

        foreach (var headers in credentials)
        {
            foreach (var (method, path, body) in probes)
            {
                Assert.Equal(401, await ContainerSystem.HttpFromAsync(system.Edge, "failover", AppPort, method, path, headers, body));
            }
        }

        // The same routes with the operator's token: the 401s above are the check, not an absent service. A target
        // other than the configured peer is refused even then.
        var operatorToken = new Dictionary<string, string> { ["Authorization"] = "Bearer " + system.FailoverAdminToken };
        Assert.Equal(200, await ContainerSystem.HttpFromAsync(system.Edge, "failover", AppPort, "GET", "/admin/v1/region", operatorToken));
        Assert.Equal(400, await ContainerSystem.HttpFromAsync(
            system.Edge, "failover", AppPort, "POST", "/admin/v1/switchover", operatorToken, """{"to":"region-attacker"}"""));
    }

    [Fact]
    public async Task WithTheApisIdentity_TheLedgerMovesMoneyOnlyAsADeposit()
    {
        await system.WaitUntilReadyAsync();
        var victim = AccountId.Parse($"victim-{Guid.NewGuid():N}");
        var thief = AccountId.Parse($"thief-{Guid.NewGuid():N}");
        foreach (var account in new[] { victim, thief })
        {
            Assert.IsType<OpenAccountOutcome.Opened>(await system.LedgerStore.OpenAccountAsync(account, Currency.Eur, 0, CancellationToken.None));
        }

        var funding = AccountId.ExternalFunding(Currency.Eur).Value;
        var inTransit = AccountId.InTransit(Currency.Eur).Value;
        var api = system.Apis[0];
        // The API's own movement works (so the identity is the API's, and valid)…
        Assert.Equal(200, await AsApiAsync(api, "POST", LedgerRoutes.Prefix + "transfers", Transfer(funding, victim.Value, 500)));
        // …and nothing else: from the victim, out of in-transit, a hold on external funding, funding to in-transit.
        Assert.Equal(403, await AsApiAsync(api, "POST", LedgerRoutes.Prefix + "transfers", Transfer(victim.Value, thief.Value, 500)));
        Assert.Equal(403, await AsApiAsync(api, "POST", LedgerRoutes.Prefix + "transfers", Transfer(inTransit, thief.Value, 500)));
        Assert.Equal(403, await AsApiAsync(api, "POST", LedgerRoutes.Prefix + "transfers", Transfer(funding, thief.Value, 500, kind: "pending")));
        Assert.Equal(403, await AsApiAsync(api, "POST", LedgerRoutes.Prefix + "transfers", Transfer(funding, inTransit, 500)));
        Assert.Equal(403, await AsApiAsync(api, "POST", LedgerRoutes.Prefix + "batches", $$"""{"transfers":[{{Transfer(victim.Value, thief.Value, 500)}}]}"""));

        Assert.Equal(500, (await system.LedgerStore.GetAccountAsync(victim, CancellationToken.None))!.BalanceMinor);
        var thiefAccount = (await system.LedgerStore.GetAccountAsync(thief, CancellationToken.None))!;
        Assert.Equal((0L, 0L), (thiefAccount.BalanceMinor, thiefAccount.PendingCreditMinor));
    }

    /// <summary>etcd, as a client on the network would reach it (here through the members' published ports: the
    /// members' checks are the same): without a certificate of the release's CA nothing is served, and with the API's
    /// own certificate (what a compromised API pod holds) the ledger's keys can be neither written nor read.</summary>
    [Fact]
    public async Task Etcd_RefusesClientsWithoutTheCasCertificate_AndTheApisCertificateCannotTouchTheLedger()
    {
        await system.WaitUntilReadyAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var cancellationToken = timeout.Token;
        var ledgerKey = ContainerSystem.KeyPrefix + "ledger/acct/attacker-account";
        using (var plaintext = EtcdConnection.Create(system.EtcdHostEndpoints.Replace("https://", "http://", StringComparison.Ordinal)))
        {
            await Assert.ThrowsAsync<RpcException>(() => PutAsync(plaintext, ledgerKey, cancellationToken));
        }

        var elsewhere = Path.Combine(Path.GetTempPath(), $"daprpayments-stranger-{Guid.NewGuid():N}");
        try
        {
            var stranger = EtcdCertificates.Create(elsewhere).Client(EtcdRbac.Root); // even one that claims to be root
            using var impostor = EtcdConnection.Create(system.EtcdHostEndpoints, stranger with { CaFile = system.Certificates.CaFile });
            await Assert.ThrowsAsync<RpcException>(() => PutAsync(impostor, ledgerKey, cancellationToken));
        }
        finally
        {
            Directory.Delete(elsewhere, recursive: true);
        }

        using var api = EtcdConnection.Create(system.EtcdHostEndpoints, system.Certificates.Client(EtcdRoles.Api));
        await RangeAsync(api, ContainerSystem.KeyPrefix + "api/", cancellationToken); // the API's identity is valid…
        AssertDenied(await Assert.ThrowsAsync<RpcException>(() => PutAsync(api, ledgerKey, cancellationToken)));
        AssertDenied(await Assert.ThrowsAsync<RpcException>(() => RangeAsync(api, ContainerSystem.KeyPrefix + "ledger/", cancellationToken)));
        AssertDenied(await Assert.ThrowsAsync<RpcException>(() => PutAsync(api, ContainerSystem.KeyPrefix + "region/active-epoch", cancellationToken)));
        Assert.Equal(0L, await RangeAsync(system.Etcd, ledgerKey, cancellationToken)); // …and wrote nothing there
    }

    private static void AssertDenied(RpcException exception) =>
        Assert.True(exception.Status.StatusCode == StatusCode.PermissionDenied, $"expected PermissionDenied, got {exception.Status}");

    private static Task<PutResponse> PutAsync(EtcdConnection connection, string key, CancellationToken cancellationToken) =>
        WhileUnansweredAsync(() => EtcdConnection.CallAsync(token => connection.Kv.PutAsync(
            new PutRequest { Key = EtcdBytes.Key(key), Value = EtcdBytes.Key("minted") }, cancellationToken: token), cancellationToken), cancellationToken);

    private static async Task<long> RangeAsync(EtcdConnection connection, string prefix, CancellationToken cancellationToken) =>
        (await WhileUnansweredAsync(() => EtcdConnection.CallAsync(token => connection.Kv.RangeAsync(
            new RangeRequest { Key = EtcdBytes.Key(prefix), RangeEnd = EtcdBytes.PrefixEnd(prefix), CountOnly = true }, cancellationToken: token), cancellationToken),
            cancellationToken)).Count;

    /// <summary>Retries (bounded) a call the members did not answer in time — on a busy machine a fresh TLS handshake
    /// through Docker's port proxy can outlast one call's connect timeout — and never a refusal (PermissionDenied).</summary>
    private static async Task<T> WhileUnansweredAsync<T>(Func<Task<T>> call, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await call();
            }
            catch (RpcException exception) when (exception.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded && attempt < MaxAttempts)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(500 * attempt), cancellationToken);
            }
        }
    }

    private const int MaxAttempts = 6;

    /// <summary>From inside the API container with the API's credentials: straight to the ledger's port with the
    /// ledger token the API holds (no daprd), or through the API's own sidecar (daprd mode, as in a pod).</summary>
    private Task<int> AsApiAsync(DotNet.Testcontainers.Containers.IContainer api, string method, string path, string body)
    {
        if (ContainerSystem.SidecarMode == "daprd")
        {
            return ContainerSystem.HttpFromAsync(api, "127.0.0.1", 3500, method, "v1.0/invoke/daprpayments-ledger/method/" + path, new Dictionary<string, string>(), body);
        }

        var settings = system.Identity.Settings(ServiceRoles.Api);
        var headers = new Dictionary<string, string>
        {
            [ServiceIdentityExtensions.TokenHeader] = settings[$"{ServiceIdentityOptions.Section}:TargetTokens:{ServiceRoles.Ledger}"],
            [ServiceIdentityExtensions.CallerHeader] = settings[$"{ServiceIdentityOptions.Section}:AppId"],
        };
        return ContainerSystem.HttpFromAsync(api, "ledger", AppPort, method, path, headers, body);
    }

    private static string Transfer(string debit, string credit, long amount, string kind = "single") =>
        $$"""{"kind":"{{kind}}","id":"t-{{Guid.NewGuid():N}}","debitAccountId":"{{debit}}","creditAccountId":"{{credit}}","amountMinor":{{amount}},"currency":"EUR",{{(kind == "pending" ? "\"timeoutMs\":60000," : "")}}"issuedAtUnixMs":{{DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()}}}""";
}

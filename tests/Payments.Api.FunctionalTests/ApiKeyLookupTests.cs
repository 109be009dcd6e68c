using System.Diagnostics;
using Etcdserverpb;
using Google.Protobuf;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Payments.Etcd;
using Payments.Merchants;

namespace Payments.Api.FunctionalTests;

/// <summary>Issue 12 (abuse limits): a key found unknown is answered from memory for a bounded window, so a client
/// hammering with a wrong key does not cost a linearizable etcd read per request; and a replica holds every live key,
/// so a valid key needs no lookup at all.</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class ApiKeyLookupTests(ApiSystemFixture system)
{
    [Fact]
    public async Task AnUnknownKey_IsNotLookedUpAgainWithinTheWindow_AndIsAfterIt()
    {
        var prefix = $"/test/{Guid.NewGuid():N}/api/";
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var store = new MerchantStore(system.Etcd, prefix, time);
        const string Key = "dp_not-issued-yet";

        Assert.Null(await store.MerchantForKeyAsync(Key, CancellationToken.None));

        // The record appears in etcd (as if restored): within the window the store does not ask etcd again…
        await EtcdConnection.CallAsync(token => system.Etcd.Kv.PutAsync(new PutRequest
        {
            Key = EtcdBytes.Key(prefix + "merchant-keys/" + MerchantStore.Hash(Key)), Value = ByteString.CopyFromUtf8("merchant-late"),
        }, cancellationToken: token), CancellationToken.None);
        time.Advance(MerchantStore.UnknownKeyWindow - TimeSpan.FromSeconds(1));
        Assert.Null(await store.MerchantForKeyAsync(Key, CancellationToken.None));

        // …and after it, it reads etcd once more and finds it (then keeps it).
        time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal("merchant-late", await store.MerchantForKeyAsync(Key, CancellationToken.None));
    }

    [Fact]
    public async Task AReplica_HoldsEveryLiveKey_FromItsStart_AndTheWatchKeepsThemTrue()
    {
        var prefix = $"/test/{Guid.NewGuid():N}/api/";
        var admin = new MerchantStore(system.Etcd, prefix); // another replica: issues and revokes
        var before = await admin.IssueApiKeyAsync(MerchantKeysTests.NewMerchantId(), CancellationToken.None);
        var revokedBefore = await admin.IssueKeyAsync(await NewMerchantAsync(admin), ApiScopes.Default, CancellationToken.None);
        await admin.RevokeKeyAsync(revokedBefore.Issued!.Record.MerchantId, revokedBefore.Issued.Record.KeyId, CancellationToken.None);
        // A record no version of the store can read: it is refused, and stops neither the load nor the watch.
        await PutAsync(prefix + "merchant-keys/" + MerchantStore.Hash("dp_test_corrupt"), "{not json");

        using var stop = new CancellationTokenSource();
        var replica = new MerchantStore(system.Etcd, prefix);
        var running = replica.RunInvalidationAsync(NullLogger.Instance, stop.Token);
        try
        {
            await PollUntilAsync(() => replica.IsMirroring, "the replica never held its keys");
            Assert.True(replica.KeysLoaded);
            Assert.True(replica.IsCached(before)); // loaded at start, never looked up
            Assert.False(replica.IsCached(revokedBefore.Issued.Key)); // a revoked key is not held
            Assert.False(replica.IsCached("dp_test_corrupt"));

            // Issued elsewhere after the start: the watch brings it in; revoked elsewhere: the watch takes it out.
            await PutAsync(prefix + "merchant-keys/" + MerchantStore.Hash("dp_test_corrupt-again"), "[1,");
            var merchant = await NewMerchantAsync(admin);
            var issued = (await admin.IssueKeyAsync(merchant, [ApiScopes.PaymentsRead], CancellationToken.None)).Issued!;
            await PollUntilAsync(() => replica.IsCached(issued.Key), "the watch never brought the new key in");
            Assert.Equal([ApiScopes.PaymentsRead], (await replica.AuthenticateAsync(issued.Key, CancellationToken.None))!.Scopes);
            Assert.Equal(KeyAdminResult.Done, await admin.RevokeKeyAsync(merchant, issued.Record.KeyId, CancellationToken.None));
            await PollUntilAsync(() => !replica.IsCached(issued.Key), "the watch never took the revoked key out");
            Assert.Null(await replica.AuthenticateAsync(issued.Key, CancellationToken.None));
            Assert.NotNull(await replica.AuthenticateAsync(before, CancellationToken.None));
            Assert.True(replica.IsMirroring);
        }
        finally
        {
            await stop.CancelAsync();
            await running;
        }
    }

    /// <summary>A replica whose key watch is down looks every key up (holding it a second at a time): valid keys sent
    /// all at once from one address — merchants behind one egress — past the four lookups in flight per address were
    /// refused 429 "without a valid API key". They wait their turn now. The replica runs without its key upkeep (the
    /// watch), which is what a watch that cannot reach etcd leaves.</summary>
    [Fact]
    public async Task ValidKeysAReplicaDoesNotHold_SentAllAtOnceFromOneAddress_AreAllAnswered()
    {
        const int Merchants = 48;
        await using var replica = system.StartReplica(web => web.ConfigureServices(services =>
        {
            foreach (var upkeep in services.Where(service => service.ImplementationType?.Name == "ApiKeyUpkeep").ToArray())
            {
                services.Remove(upkeep);
            }
        }));
        var keys = await Task.WhenAll(Enumerable.Range(0, Merchants).Select(_ =>
            system.Store.IssueApiKeyAsync(MerchantKeysTests.NewMerchantId(), CancellationToken.None)));
        using var direct = replica.CreateClient(); // one client address for all

        var answers = await Task.WhenAll(keys.Select(async key =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/accounts/any");
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
            using var response = await direct.SendAsync(request);
            return response.StatusCode;
        }));

        Assert.All(answers, status => Assert.Equal(System.Net.HttpStatusCode.NotFound, status));
    }

    private static async Task<string> NewMerchantAsync(MerchantStore store)
    {
        var merchant = MerchantKeysTests.NewMerchantId();
        await store.CreateMerchantAsync(merchant, null, CancellationToken.None);
        return merchant;
    }

    private Task PutAsync(string key, string value) =>
        EtcdConnection.CallAsync(token => system.Etcd.Kv.PutAsync(new PutRequest
        {
            Key = EtcdBytes.Key(key), Value = ByteString.CopyFromUtf8(value),
        }, cancellationToken: token), CancellationToken.None);

    private static async Task PollUntilAsync(Func<bool> condition, string failure)
    {
        var waited = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(30), failure);
            await Task.Delay(10);
        }
    }
}

using Etcdserverpb;
using Google.Protobuf;
using Microsoft.Extensions.Time.Testing;
using Payments.Etcd;
using Payments.Merchants;

namespace Payments.Api.FunctionalTests;

/// <summary>Issue 12 (abuse limits): a key found unknown is answered from memory for a bounded window, so a client
/// hammering with a wrong key does not cost a linearizable etcd read per request.</summary>
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
}

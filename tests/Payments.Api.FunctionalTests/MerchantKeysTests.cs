using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Payments.Merchants;
using Payments.Testing;
using Xunit.Abstractions;

namespace Payments.Api.FunctionalTests;

/// <summary>Issue 12, merchants and keys: an operator creates merchants and issues, lists, rotates and revokes keys
/// through the admin API; merchants use their keys through the public edge. Each test fails on the code before it:
/// keys could only be made by local tools, and a key, once cached, stayed valid on every replica.</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class MerchantKeysTests(ApiSystemFixture system, ITestOutputHelper output) : IAsyncLifetime
{
    /// <summary>Bound of the waits for a change to show on another replica (the design's bound is much tighter: the
    /// watch delivers in milliseconds; this only keeps a broken build from hanging).</summary>
    private static readonly TimeSpan PropagationBound = TimeSpan.FromSeconds(10);

    private WebApplication? edge;

    public async Task InitializeAsync() => edge = await EdgeHost.StartAsync(system.BaseAddress);

    public Task DisposeAsync() => InProcessApp.StopAsync(edge);

    [Fact]
    public async Task AnOperatorIssuesAKey_ShownOnce_ListedWithoutItsSecret_AndTheMerchantUsesItThroughTheEdge()
    {
        using var admin = Admin(system.BaseAddress);
        var merchant = NewMerchantId();
        using (var created = await admin.PostAsJsonAsync("/admin/v1/merchants", new { merchantId = merchant, name = "Keys Ltd" }))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            Assert.Equal($"/admin/v1/merchants/{merchant}", created.Headers.Location?.OriginalString); // a probe: a 201 without it
        }

        using (var again = await admin.PostAsJsonAsync("/admin/v1/merchants", new { merchantId = merchant, name = "Keys Ltd" }))
        {
            Assert.Equal(HttpStatusCode.OK, again.StatusCode); // create is idempotent
        }

        // Only for the same body: another name (or none) is 409 and the record keeps its name.
        foreach (var other in new object[] { new { merchantId = merchant, name = "Other Ltd" }, new { merchantId = merchant } })
        {
            using var renamed = await admin.PostAsJsonAsync("/admin/v1/merchants", other);
            Assert.Equal(HttpStatusCode.Conflict, renamed.StatusCode);
            Assert.EndsWith("/merchant-exists", (await renamed.JsonAsync()).GetProperty("type").GetString());
        }

        Assert.Equal("Keys Ltd", JsonDocument.Parse(await admin.GetStringAsync($"/admin/v1/merchants/{merchant}")).RootElement.GetProperty("name").GetString());

        // A merchant made without a name takes the first name a create gives (there is no rename; the keys' migration
        // and the local tools make nameless ones), once.
        var nameless = NewMerchantId();
        // An empty or blank name is no name (a probe: "" was stored, and took the place of the first real one).
        foreach (var blank in new[] { "", "   " })
        {
            using var refused = await admin.PostAsJsonAsync("/admin/v1/merchants", new { merchantId = nameless, name = blank });
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.True((await refused.JsonAsync()).GetProperty("errors").TryGetProperty("name", out _));
        }

        Assert.Equal(HttpStatusCode.Created, (await admin.PostAsJsonAsync("/admin/v1/merchants", new { merchantId = nameless })).StatusCode);
        using (var named = await admin.PostAsJsonAsync("/admin/v1/merchants", new { merchantId = nameless, name = "Named Ltd" }))
        {
            Assert.Equal(HttpStatusCode.OK, named.StatusCode);
            Assert.Equal("Named Ltd", (await named.JsonAsync()).GetProperty("name").GetString());
        }

        Assert.Equal(HttpStatusCode.Conflict, (await admin.PostAsJsonAsync("/admin/v1/merchants", new { merchantId = nameless, name = "Renamed Ltd" })).StatusCode);

        // Scopes in a chunked body without a Content-Type: refused for its type, and no key issued — taken for no body,
        // it issued a key with the default (broader) scopes.
        using (var untyped = new HttpRequestMessage(HttpMethod.Post, $"/admin/v1/merchants/{merchant}/keys")
               {
                   Content = new ByteArrayContent(System.Text.Encoding.UTF8.GetBytes($"{{\"scopes\":[\"{ApiScopes.AccountsRead}\"]}}")),
               })
        {
            untyped.Headers.TransferEncodingChunked = true;
            using var refused = await admin.SendAsync(untyped);
            Assert.Equal(HttpStatusCode.UnsupportedMediaType, refused.StatusCode);
        }

        Assert.Empty(JsonDocument.Parse(await admin.GetStringAsync($"/admin/v1/merchants/{merchant}/keys")).RootElement.GetProperty("keys").EnumerateArray());

        var (key, keyId) = await IssueAsync(admin, merchant, ApiScopes.AccountsRead, ApiScopes.AccountsWrite);
        Assert.StartsWith("dp_test_", key, StringComparison.Ordinal);

        using var client = EdgeHost.Client(edge!, key);
        using (var opened = await client.PostAsJsonAsync("/v1/accounts", new { accountId = $"{merchant}-a", currency = "EUR" }))
        {
            Assert.Equal(HttpStatusCode.Created, opened.StatusCode);
            Assert.Equal($"/v1/accounts/{merchant}-a", opened.Headers.Location?.OriginalString); // through the edge too
        }

        await system.Store.FlushUsageAsync(CancellationToken.None); // the minute's flush, now
        var listBody = await admin.GetStringAsync($"/admin/v1/merchants/{merchant}/keys");
        Assert.DoesNotContain(key, listBody, StringComparison.Ordinal);
        var listed = Assert.Single(JsonDocument.Parse(listBody).RootElement.GetProperty("keys").EnumerateArray());
        Assert.Equal(keyId, listed.GetProperty("keyId").GetString());
        Assert.Equal("dp_test_", listed.GetProperty("prefix").GetString());
        Assert.Equal(key[^4..], listed.GetProperty("last4").GetString());
        Assert.Equal([ApiScopes.AccountsRead, ApiScopes.AccountsWrite], listed.GetProperty("scopes").EnumerateArray().Select(scope => scope.GetString()));
        Assert.True(listed.TryGetProperty("lastUsedAt", out _), "lastUsedAt is recorded once the key was used");
    }

    [Fact]
    public async Task TheAdminApi_NeedsTheOperatorsToken_AndIsNotRoutedByThePublicEdge()
    {
        var merchantKey = await system.Store.IssueApiKeyAsync(NewMerchantId(), CancellationToken.None, [.. ApiScopes.All]);
        foreach (var token in new[] { null, merchantKey, ApiSystemFixture.AdminToken + "x" })
        {
            using var anonymous = new HttpClient { BaseAddress = system.BaseAddress };
            if (token is not null)
            {
                anonymous.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            }

            using var refused = await anonymous.PostAsJsonAsync("/admin/v1/merchants", new { merchantId = NewMerchantId() });
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
            Assert.EndsWith("/unauthorized", (await refused.JsonAsync()).GetProperty("type").GetString());
            // A probe: a method the route does not take (405, with its Allow header) and a path with no route (404)
            // were answered before the token was checked, which mapped the routes for anyone. (Asked without a token
            // alone: wrong tokens from this address count against one budget for the whole test run, 20 a minute.)
            foreach (var (method, path) in token is not null ? [] : new[] { ("DELETE", "/admin/v1/merchants/x"), ("GET", "/admin/v1/nope"), ("GET", "/admin?x=1") })
            {
                using var unmatched = await anonymous.SendAsync(new HttpRequestMessage(new HttpMethod(method), path));
                Assert.Equal(HttpStatusCode.Unauthorized, unmatched.StatusCode);
                Assert.False(unmatched.Content.Headers.Contains("Allow"), $"{method} {path} says which methods it takes");
            }
        }

        // The operator is told what an unmatched request is, and that a read takes no query parameter it does not
        // document (a probe: ?limit=5 listed every key).
        using var admin = Admin(system.BaseAddress);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await admin.DeleteAsync("/admin/v1/merchants/x")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync("/admin/v1/nope")).StatusCode);
        using var limited = await admin.GetAsync($"/admin/v1/merchants/{NewMerchantId()}/keys?limit=5");
        Assert.Equal(HttpStatusCode.BadRequest, limited.StatusCode);
        Assert.EndsWith("/validation-failed", (await limited.JsonAsync()).GetProperty("type").GetString());

        using var throughEdge = Admin(EdgeHost.Address(edge!));
        using var notRouted = await throughEdge.GetAsync("/admin/v1/merchants/anyone/keys");
        Assert.Equal(HttpStatusCode.NotFound, notRouted.StatusCode);
        Assert.Equal("application/problem+json", notRouted.Content.Headers.ContentType?.MediaType);
    }

    /// <summary>Kestrel resolves dot segments before routing, so "/v1/../admin/…" reached the admin API: a front door
    /// that routes /v1 by prefix and forwards the path as sent (a Gateway that does not normalise) let it through.
    /// The operator's routes answer only a target that names them as sent.</summary>
    [Theory]
    [InlineData("/v1/../admin/v1/merchants/{0}")]
    [InlineData("/v1/%2E%2E/admin/v1/merchants/{0}")]
    [InlineData("/admin/../v1/../admin/v1/merchants/{0}")]
    public async Task TheAdminApi_AnswersOnlyATargetThatNamesIt_NotOneThroughDotSegments(string target)
    {
        using var admin = Admin(system.BaseAddress);
        var merchant = NewMerchantId();
        await CreateMerchantAsync(admin, merchant);
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync($"/admin/v1/merchants/{merchant}")).StatusCode);

        // Sent as written: HttpClient would resolve the dot segments itself.
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(system.BaseAddress.Host, system.BaseAddress.Port);
        await using var stream = tcp.GetStream();
        var request = $"GET {string.Format(System.Globalization.CultureInfo.InvariantCulture, target, merchant)} HTTP/1.1\r\nHost: {system.BaseAddress.Authority}\r\n"
            + $"Authorization: Bearer {ApiSystemFixture.AdminToken}\r\nConnection: close\r\n\r\n";
        await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(request));
        using var reader = new StreamReader(stream, System.Text.Encoding.ASCII);
        var statusLine = await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.StartsWith("HTTP/1.1 404", statusLine, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ARevokedKey_StopsWorkingOnEveryReplica_ThroughTheWatch()
    {
        // A second replica whose clock never moves: nothing there can expire a cached key by time, so only the
        // etcd watch can make it drop the revoked key.
        await using var frozen = system.StartReplica(web => web.ConfigureServices(services => services.AddSingleton<TimeProvider>(new FakeTimeProvider(DateTimeOffset.UtcNow))));
        using var admin = Admin(system.BaseAddress);
        var merchant = NewMerchantId();
        await CreateMerchantAsync(admin, merchant);
        var (key, keyId) = await IssueAsync(admin, merchant, ApiScopes.AccountsRead);
        using var onA = EdgeHost.Client(edge!, key);
        using var onB = new HttpClient { BaseAddress = frozen.ClientOptions.BaseAddress };
        onB.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        // Both replicas know the key (cached).
        Assert.Equal(HttpStatusCode.NotFound, (await onA.GetAsync("/v1/accounts/none")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await onB.GetAsync("/v1/accounts/none")).StatusCode);

        var revokedAt = Stopwatch.StartNew();
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/admin/v1/merchants/{merchant}/keys/{keyId}")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await onA.GetAsync("/v1/accounts/none")).StatusCode);
        while ((await onB.GetAsync("/v1/accounts/none")).StatusCode != HttpStatusCode.Unauthorized)
        {
            Assert.True(revokedAt.Elapsed < PropagationBound, $"The other replica still accepts the revoked key after {PropagationBound}.");
            await Task.Delay(20);
        }

        output.WriteLine($"revocation in effect on the other replica after {revokedAt.Elapsed.TotalMilliseconds:F0} ms");
        Assert.Equal(HttpStatusCode.NotFound, (await admin.DeleteAsync($"/admin/v1/merchants/{merchant}/keys/{keyId}")).StatusCode);
    }

    [Fact]
    public async Task ARotatedKey_KeepsWorkingForItsOverlap_ThenOnlyTheNewOneDoes()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var replica = system.StartReplica(web => web.ConfigureServices(services => services.AddSingleton<TimeProvider>(time)));
        using var admin = Admin(replica.ClientOptions.BaseAddress);
        var merchant = NewMerchantId();
        await CreateMerchantAsync(admin, merchant);
        var (oldKey, oldKeyId) = await IssueAsync(admin, merchant, ApiScopes.AccountsRead);

        using var rotated = await admin.PostAsJsonAsync($"/admin/v1/merchants/{merchant}/keys/{oldKeyId}/rotate", new { overlapSeconds = 60 });
        Assert.Equal(HttpStatusCode.Created, rotated.StatusCode);
        var newKey = (await rotated.JsonAsync()).GetProperty("key").GetString()!;
        Assert.Equal(HttpStatusCode.NotFound, await StatusWithAsync(replica, oldKey));
        Assert.Equal(HttpStatusCode.NotFound, await StatusWithAsync(replica, newKey));

        time.Advance(TimeSpan.FromSeconds(61));
        Assert.Equal(HttpStatusCode.Unauthorized, await StatusWithAsync(replica, oldKey));
        Assert.Equal(HttpStatusCode.NotFound, await StatusWithAsync(replica, newKey));
        var listed = (await admin.GetFromJsonAsync<JsonElement>($"/admin/v1/merchants/{merchant}/keys")).GetProperty("keys");
        Assert.DoesNotContain(listed.EnumerateArray(), key => key.GetProperty("keyId").GetString() == oldKeyId);
    }

    /// <summary>Found by a probe: a key rotated again — an operator's retry, a double click, eight calls at once — made
    /// another live successor each time (seven of eight parallel calls answered 201), each with the key's scopes and
    /// none expiring. A key is rotated once; after that the answer is 409 naming its successor.</summary>
    [Fact]
    public async Task AKeyRotatedAgain_OrManyTimesAtOnce_HasOneSuccessor_AndTheRestAre409()
    {
        using var admin = Admin(system.BaseAddress);
        var merchant = NewMerchantId();
        await CreateMerchantAsync(admin, merchant);
        var (_, keyId) = await IssueAsync(admin, merchant, ApiScopes.AccountsRead);

        var answers = await Task.WhenAll(Enumerable.Range(0, 8).Select(async _ =>
        {
            using var rotated = await admin.PostAsJsonAsync($"/admin/v1/merchants/{merchant}/keys/{keyId}/rotate", new { overlapSeconds = 60 });
            return (rotated.StatusCode, Body: await rotated.JsonAsync());
        }));
        using var again = await admin.PostAsJsonAsync($"/admin/v1/merchants/{merchant}/keys/{keyId}/rotate", new { overlapSeconds = 60 });

        var successor = Assert.Single(answers, answer => answer.StatusCode == HttpStatusCode.Created).Body.GetProperty("details").GetProperty("keyId").GetString()!;
        Assert.All(answers.Where(answer => answer.StatusCode != HttpStatusCode.Created).Append((again.StatusCode, Body: await again.JsonAsync())), answer =>
        {
            Assert.Equal(HttpStatusCode.Conflict, answer.StatusCode);
            Assert.EndsWith("/api-key-already-rotated", answer.Body.GetProperty("type").GetString());
            Assert.Contains(successor, answer.Body.GetProperty("detail").GetString(), StringComparison.Ordinal);
        });
        var listed = (await admin.GetFromJsonAsync<JsonElement>($"/admin/v1/merchants/{merchant}/keys")).GetProperty("keys").EnumerateArray()
            .Select(key => key.GetProperty("keyId").GetString()).Order().ToArray();
        Assert.Equal(new[] { keyId, successor }.Order(), listed);
        using var next = await admin.PostAsJsonAsync($"/admin/v1/merchants/{merchant}/keys/{successor}/rotate", new { overlapSeconds = 60 });
        Assert.Equal(HttpStatusCode.Created, next.StatusCode); // the successor is the key to rotate
    }

    /// <summary>Found by a probe: a rotation with no overlap ends the key at once, and its retry (an answer lost on the
    /// way) was 404, naming no successor; it is 409 naming it, as within an overlap.</summary>
    [Fact]
    public async Task TheRetryOfARotationWithoutOverlap_Is409NamingTheSuccessor()
    {
        using var admin = Admin(system.BaseAddress);
        var merchant = NewMerchantId();
        await CreateMerchantAsync(admin, merchant);
        var (_, keyId) = await IssueAsync(admin, merchant, ApiScopes.AccountsRead);
        using var rotated = await admin.PostAsJsonAsync($"/admin/v1/merchants/{merchant}/keys/{keyId}/rotate", new { overlapSeconds = 0 });
        Assert.Equal(HttpStatusCode.Created, rotated.StatusCode);
        var successor = (await rotated.JsonAsync()).GetProperty("details").GetProperty("keyId").GetString()!;

        using var retried = await admin.PostAsJsonAsync($"/admin/v1/merchants/{merchant}/keys/{keyId}/rotate", new { overlapSeconds = 0 });
        Assert.Equal(HttpStatusCode.Conflict, retried.StatusCode);
        var problem = await retried.JsonAsync();
        Assert.EndsWith("/api-key-already-rotated", problem.GetProperty("type").GetString());
        Assert.Contains(successor, problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Contains("ended at", problem.GetProperty("detail").GetString(), StringComparison.Ordinal); // not "revoke this key": it is over
    }

    [Fact]
    public async Task ATestKey_IsRefusedByALiveDeployment_WithAProblemThatSaysSo()
    {
        await using var live = system.StartReplica(web => web.UseSetting("Payments:KeyMode", ApiKeyModes.Live));
        var testKey = await system.Store.IssueApiKeyAsync(NewMerchantId(), CancellationToken.None);
        await using var throughEdge = await EdgeHost.ClientThroughAsync(live.ClientOptions.BaseAddress, testKey);

        using var refused = await throughEdge.Http.GetAsync("/v1/accounts/any");

        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        Assert.Contains("dp_live_", (await refused.JsonAsync()).GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task WithoutAnOperatorToken_TheAdminApiIsOff_404_NotA500()
    {
        // The chart's admin Secret is optional: an API without it must say its admin API is off. Building the filter
        // per request used to fail on the missing credential (500 for every admin request, with or without a token).
        await using var noAdmin = system.StartReplica(web => web.UseSetting("Admin:Token", string.Empty));
        using var client = new HttpClient { BaseAddress = noAdmin.ClientOptions.BaseAddress };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ApiSystemFixture.AdminToken);

        using var list = await client.GetAsync($"/admin/v1/merchants/{NewMerchantId()}/keys");
        using var create = await client.PostAsJsonAsync("/admin/v1/merchants", new { merchantId = NewMerchantId() });

        foreach (var refused in new[] { list, create })
        {
            Assert.Equal(HttpStatusCode.NotFound, refused.StatusCode);
            Assert.EndsWith("/admin-not-configured", (await refused.JsonAsync()).GetProperty("type").GetString());
        }
    }

    [Fact]
    public async Task AKeyWithoutTheScope_Gets403InsufficientScope()
    {
        var readOnly = await system.Store.IssueApiKeyAsync(NewMerchantId(), CancellationToken.None, ApiScopes.AccountsRead, ApiScopes.PaymentsRead);
        using var client = EdgeHost.Client(edge!, readOnly);

        using var open = await client.PostAsJsonAsync("/v1/accounts", new { accountId = "scoped-out", currency = "EUR" });
        using var pay = await client.PayAsync("a", "b", 1);

        foreach (var refused in new[] { open, pay })
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            Assert.EndsWith("/insufficient-scope", (await refused.JsonAsync()).GetProperty("type").GetString());
        }
    }

    /// <summary>The cap was a count, then a write: 60 issues at once all passed the count, so a merchant got more than 20
    /// keys, and those past what a listing reads were never shown to an operator cleaning up after a leak. The write
    /// now compares the merchant's keys with the count's revision.</summary>
    [Fact]
    public async Task KeysIssuedAllAtOnce_NeverExceedTheMerchantsCap_AndEveryOneIsListed()
    {
        const int Requests = 60;
        var merchant = NewMerchantId();
        await system.Store.CreateMerchantAsync(merchant, null, CancellationToken.None);
        var results = await Task.WhenAll(Enumerable.Range(0, Requests).Select(async _ =>
        {
            try
            {
                return (await system.Store.IssueKeyAsync(merchant, ApiScopes.Default, CancellationToken.None)).Result;
            }
            catch (Payments.Etcd.EtcdContentionException)
            {
                return KeyAdminResult.KeyNotFound; // lost every round to the others: a 503 to its caller, nothing issued
            }
        }));

        var issued = results.Count(result => result == KeyAdminResult.Done);
        Assert.InRange(issued, 1, MerchantStore.MaxKeysPerMerchant);
        Assert.Equal(issued, (await system.Store.ListKeysAsync(merchant, CancellationToken.None))!.Count);

        // Filled one by one to the cap, and not one past it (the burst alone may stop short of the cap).
        for (var more = issued; more < MerchantStore.MaxKeysPerMerchant; more++)
        {
            Assert.Equal(KeyAdminResult.Done, (await system.Store.IssueKeyAsync(merchant, ApiScopes.Default, CancellationToken.None)).Result);
        }

        Assert.Equal(KeyAdminResult.KeyLimitReached, (await system.Store.IssueKeyAsync(merchant, ApiScopes.Default, CancellationToken.None)).Result);
        Assert.Equal(MerchantStore.MaxKeysPerMerchant, (await system.Store.ListKeysAsync(merchant, CancellationToken.None))!.Count);
    }

    /// <summary>Keys issued before keys had records (the merchant id alone under the key's hash) had no entry in the
    /// merchant's key index: the operator could neither list, rotate nor revoke them, and they read with today's
    /// default scopes (webhooks:manage included, which came later). A replica loading its keys rewrites them: listed
    /// with the scopes keys had then, and revocable.</summary>
    [Fact]
    public async Task AKeyFromBeforeKeyRecords_IsListed_WithTheScopesItHad_AndCanBeRevoked()
    {
        var merchant = NewMerchantId();
        var key = $"dp_{Guid.NewGuid():N}{Guid.NewGuid():N}";
        var hash = MerchantStore.Hash(key);
        await system.Etcd.Client.PutAsync(ApiSystemFixture.KeyPrefix + "api/merchant-keys/" + hash, merchant);
        using var client = EdgeHost.Client(edge!, key);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/v1/accounts/none")).StatusCode); // it works, as before
        using var hooks = await client.GetAsync("/v1/webhook-endpoints");
        Assert.Equal(HttpStatusCode.Forbidden, hooks.StatusCode); // not a scope it was issued with

        await using var restarted = system.StartReplica(); // a replica's key load rewrites it
        using var admin = Admin(system.BaseAddress);
        var keyId = MerchantStore.LegacyKeyId(hash);
        var waited = Stopwatch.StartNew();
        async Task<bool> ListedAsync()
        {
            // 404 until the rewrite has also made the merchant's record (keys from then had none either).
            using var response = await admin.GetAsync($"/admin/v1/merchants/{merchant}/keys");
            return response.IsSuccessStatusCode && (await response.JsonAsync()).GetProperty("keys").EnumerateArray().Any(item => item.GetProperty("keyId").GetString() == keyId);
        }

        while (!await ListedAsync())
        {
            Assert.True(waited.Elapsed < PropagationBound, $"The legacy key was not listed within {PropagationBound}.");
            await Task.Delay(50);
        }

        var listed = (await admin.GetFromJsonAsync<JsonElement>($"/admin/v1/merchants/{merchant}/keys")).GetProperty("keys").EnumerateArray()
            .Single(item => item.GetProperty("keyId").GetString() == keyId);
        Assert.Equal(MerchantStore.LegacyScopes, listed.GetProperty("scopes").EnumerateArray().Select(scope => scope.GetString()));
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/admin/v1/merchants/{merchant}/keys/{keyId}")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/v1/accounts/none")).StatusCode);
    }

    /// <summary>A key that may open accounts but not read them was shown the balances of an account it opened again
    /// (the open is idempotent): what accounts:read guards. It is told the account exists, not what it holds.</summary>
    [Fact]
    public async Task OpeningAnExistingAccountAgain_WithoutAccountsRead_ShowsNoBalances()
    {
        var merchant = NewMerchantId();
        using var full = EdgeHost.Client(edge!, await system.Store.IssueApiKeyAsync(merchant, CancellationToken.None));
        using var opener = EdgeHost.Client(edge!, await system.Store.IssueApiKeyAsync(merchant, CancellationToken.None, ApiScopes.AccountsWrite));
        await full.OpenAccountAsync("funded", fundsMinor: 5_000);

        using var again = await opener.PostAsJsonAsync("/v1/accounts", new { accountId = "funded", currency = "USD" });
        using var byReader = await full.PostAsJsonAsync("/v1/accounts", new { accountId = "funded", currency = "USD" });

        Assert.Equal(HttpStatusCode.Created, again.StatusCode);
        var shown = await again.JsonAsync();
        Assert.Equal("funded", shown.GetProperty("accountId").GetString());
        Assert.False(shown.TryGetProperty("balanceMinor", out _), shown.ToString());
        Assert.False(shown.TryGetProperty("availableMinor", out _), shown.ToString());
        Assert.False(shown.TryGetProperty("version", out _), shown.ToString()); // it counts the account's writes (a probe)
        Assert.Equal(5_000, (await byReader.JsonAsync()).GetProperty("balanceMinor").GetInt64());
        Assert.True((await byReader.JsonAsync()).GetProperty("version").GetInt64() > 1);
    }

    private static async Task<HttpStatusCode> StatusWithAsync(WebApplicationFactory<Program> replica, string key)
    {
        using var client = new HttpClient { BaseAddress = replica.ClientOptions.BaseAddress };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return (await client.GetAsync("/v1/accounts/none")).StatusCode;
    }

    internal static HttpClient Admin(Uri address)
    {
        var admin = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ApiSystemFixture.AdminToken);
        return admin;
    }

    internal static string NewMerchantId() => $"m-{Guid.NewGuid():N}"[..20];

    internal static async Task CreateMerchantAsync(HttpClient admin, string merchant)
    {
        using var created = await admin.PostAsJsonAsync("/admin/v1/merchants", new { merchantId = merchant });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
    }

    internal static async Task<(string Key, string KeyId)> IssueAsync(HttpClient admin, string merchant, params string[] scopes)
    {
        using var issued = await admin.PostAsJsonAsync($"/admin/v1/merchants/{merchant}/keys", new { scopes });
        Assert.Equal(HttpStatusCode.Created, issued.StatusCode);
        var body = await issued.JsonAsync();
        return (body.GetProperty("key").GetString()!, body.GetProperty("details").GetProperty("keyId").GetString()!);
    }
}

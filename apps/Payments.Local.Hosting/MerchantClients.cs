using System.Net.Http.Headers;
using System.Net.Http.Json;
using Payments.Merchants;

namespace Payments.Local.Hosting;

/// <summary>How the demo, the campaign, the system tests and the benchmarks become a merchant of the local system: the
/// merchant and its keys made through the API's admin API (as an operator would), accounts opened and funded through
/// the public API (each deposit under its own Idempotency-Key).</summary>
public static class MerchantClients
{
    /// <summary>An HTTP client for the system's public address, authenticated as a new key of <paramref name="merchant"/>
    /// (the merchant is created if new; <paramref name="scopes"/> default to <see cref="ApiScopes.Default"/>).</summary>
    public static async Task<HttpClient> CreateAsync(
        LocalSystem system, string merchant, TimeSpan requestTimeout, CancellationToken cancellationToken, params string[] scopes)
    {
        ArgumentNullException.ThrowIfNull(system);
        var key = await IssueKeyAsync(system, merchant, cancellationToken, scopes);
        var http = new HttpClient { BaseAddress = system.ApiBaseAddress, Timeout = requestTimeout };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return http;
    }

    /// <summary>Creates the merchant (if new) and issues it a key through the admin API; returns the key.</summary>
    public static async Task<string> IssueKeyAsync(LocalSystem system, string merchant, CancellationToken cancellationToken, params string[] scopes)
    {
        ArgumentNullException.ThrowIfNull(system);
        using var admin = system.ApiAdminClient(TimeSpan.FromSeconds(30));
        (await admin.PostAsJsonAsync("/admin/v1/merchants", new { merchantId = merchant }, cancellationToken)).EnsureSuccessStatusCode();
        using var issued = await admin.PostAsJsonAsync(
            $"/admin/v1/merchants/{merchant}/keys", new { scopes = scopes.Length == 0 ? ApiScopes.Default : scopes }, cancellationToken);
        issued.EnsureSuccessStatusCode();
        return (await issued.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>(cancellationToken)).GetProperty("key").GetString()!;
    }

    /// <summary>Opens each account in <paramref name="currency"/> and deposits <paramref name="fundsMinor"/> into it.</summary>
    public static async Task<List<string>> OpenFundedAccountsAsync(
        HttpClient http, IEnumerable<string> accountIds, string currency, long fundsMinor, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(accountIds);
        var accounts = new List<string>();
        foreach (var id in accountIds)
        {
            (await http.PostAsJsonAsync("/v1/accounts", new { accountId = id, currency }, cancellationToken)).EnsureSuccessStatusCode();
            using var deposit = new HttpRequestMessage(HttpMethod.Post, $"/v1/accounts/{id}/deposits") { Content = JsonContent.Create(new { amountMinor = fundsMinor, currency }) };
            deposit.Headers.Add("Idempotency-Key", "fund-" + id);
            (await http.SendAsync(deposit, cancellationToken)).EnsureSuccessStatusCode();
            accounts.Add(id);
        }

        return accounts;
    }
}

using System.Net.Http.Headers;
using System.Net.Http.Json;
using Payments.Merchants;

namespace Payments.Local.Hosting;

/// <summary>How the campaign, the system tests and the benchmarks become a merchant of the local system: a key of its
/// own, and accounts opened and funded through the public API (each deposit under its own Idempotency-Key).</summary>
public static class MerchantClients
{
    /// <summary>An HTTP client for the system's public address, authenticated as a new key of <paramref name="merchant"/>.</summary>
    public static async Task<HttpClient> CreateAsync(LocalSystem system, string merchant, TimeSpan requestTimeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(system);
        var key = await new MerchantStore(system.Etcd, LocalSystem.Layout.ApiPrefix).IssueApiKeyAsync(merchant, cancellationToken);
        var http = new HttpClient { BaseAddress = system.ApiBaseAddress, Timeout = requestTimeout };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return http;
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

using Payments.Local.Hosting;
using Payments.Merchants;
using Spectre.Console;

namespace Payments.Local;

/// <summary><c>--serve</c>: the API stays up for people to try, with two demo merchants (to try isolation).</summary>
public static class ServeMode
{
    public static async Task RunAsync(LocalSystem system, CancellationToken cancellationToken)
    {
        // Made through the admin API, as an operator would (README shows the calls).
        var keyA = await MerchantClients.IssueKeyAsync(system, "demo-merchant-a", cancellationToken);
        var reviewerA = await MerchantClients.IssueKeyAsync(system, "demo-merchant-a", cancellationToken, ApiScopes.PaymentsRead, ApiScopes.PaymentsApprove);
        var keyB = await MerchantClients.IssueKeyAsync(system, "demo-merchant-b", cancellationToken);
        var adminUrl = system.ApiReplicaAddresses[0].ToString().TrimEnd('/');
        var baseUrl = system.ApiBaseAddress.ToString().TrimEnd('/');
        AnsiConsole.MarkupLineInterpolated($$"""

            [green]DaprPayments API on {{baseUrl}}[/]  (OpenAPI: {{baseUrl}}/openapi/v1.json)
              merchant A key: {{keyA}}
              merchant A reviewer key (approves A's payments held for review): {{reviewerA}}
              merchant B key: {{keyB}}

            Try:
              curl -s -X POST {{baseUrl}}/v1/accounts -H 'Authorization: Bearer {{keyA}}' -H 'Content-Type: application/json' -d '{"accountId":"alice","currency":"EUR"}'
              curl -s -X POST {{baseUrl}}/v1/accounts/alice/deposits -H 'Authorization: Bearer {{keyA}}' -H 'Idempotency-Key: d1' -H 'Content-Type: application/json' -d '{"amountMinor":10000,"currency":"EUR"}'
              curl -s {{baseUrl}}/v1/accounts/alice -H 'Authorization: Bearer {{keyA}}'
              curl -s {{baseUrl}}/v1/accounts/alice -H 'Authorization: Bearer {{keyB}}'    # 404: another merchant's account

            The admin API (merchants and keys) is on the API replica {{adminUrl}}, with the operator token API_ADMIN_TOKEN:
              curl -s {{adminUrl}}/admin/v1/merchants/demo-merchant-a/keys -H "Authorization: Bearer $API_ADMIN_TOKEN"

            The internal services (ledger {{system.LedgerUrl}}, risk {{system.RiskUrl}}) answer 401 without a caller's token,
              and know the caller by it (API_TO_LEDGER_TOKEN is the API's): this run's tokens are in {{Path.Combine(system.LogDirectory, "credentials.env")}} (readable only by you), e.g.
              curl -s {{system.LedgerUrl}}ledger/v1/accounts/alice -H "dapr-api-token: $API_TO_LEDGER_TOKEN"

            Ctrl-C stops everything and removes its data.
            """);
        await Task.Delay(Timeout.Infinite, cancellationToken);
    }
}

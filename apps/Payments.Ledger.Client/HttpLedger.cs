using System.Net;
using System.Net.Http.Json;
using Payments.Domain;
using Payments.Ledger.Contracts;

namespace Payments.Ledger.Client;

/// <summary><see cref="ILedger"/> over HTTP: on Kubernetes through the Dapr sidecar's service invocation
/// (base address <c>http://localhost:3500/v1.0/invoke/ledger/method/</c>), locally straight to the ledger process.
/// A fault (no answer in time, 5xx, connection refused) surfaces as <see cref="LedgerUnavailableException"/>, which
/// the saga's activities let the workflow runtime retry: every request carries its own transfer id, so a retry of a
/// request whose answer was lost never applies anything twice.</summary>
public sealed class HttpLedger(HttpClient http) : ILedger
{
    public async Task<OpenAccountOutcome> OpenAccountAsync(AccountId id, Currency currency, long overdraftLimitMinor, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(id);
        ArgumentNullException.ThrowIfNull(currency);
        var wire = await SendAsync<OpenAccountOutcomeWire>(
            HttpMethod.Post, LedgerRoutes.Prefix + "accounts", new OpenAccountWire(id.Value, currency.Code, overdraftLimitMinor), cancellationToken);
        return LedgerWire.FromWire(wire!);
    }

    public async Task<SetOverdraftOutcome> SetOverdraftLimitAsync(AccountId id, long overdraftLimitMinor, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(id);
        var wire = await SendAsync<SetOverdraftOutcomeWire>(
            HttpMethod.Post, LedgerRoutes.Overdraft(id.Value), new SetOverdraftWire(overdraftLimitMinor), cancellationToken);
        return LedgerWire.FromWire(wire!);
    }

    public async Task<Account?> GetAccountAsync(AccountId id, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(id);
        var wire = await SendAsync<AccountWire>(HttpMethod.Get, LedgerRoutes.Prefix + "accounts/" + Uri.EscapeDataString(id.Value), null, cancellationToken);
        return wire is null ? null : LedgerWire.FromWire(wire);
    }

    public async Task<JournalEntry?> GetTransferAsync(TransferId id, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(id);
        // Only the ledger's own "no such transfer" is an answer: a bare 404 is a ledger without this route (an older one
        // during an upgrade), and a resumed saga must not take it for "no hold" and decide the payment again.
        using var response = await RequestAsync(HttpMethod.Get, LedgerRoutes.Prefix + "transfers/" + Uri.EscapeDataString(id.Value), cancellationToken);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return await ProblemTypeAsync(response, cancellationToken) == ProblemTypes.TransferNotFound
                ? null
                : throw new LedgerUnavailableException("The ledger service does not answer GET transfers/{id} (an older version?).");
        }

        if ((int)response.StatusCode >= 500)
        {
            throw await FaultAsync(response, cancellationToken);
        }

        await EnsureAnsweredAsync(response, "GET transfers/{id}", cancellationToken);
        return LedgerWire.FromWire((await response.Content.ReadFromJsonAsync<JournalEntryWire>(cancellationToken))!);
    }

    public async Task<TransferOutcome> TransferAsync(TransferRequest request, CancellationToken cancellationToken)
    {
        var wire = await SendAsync<OutcomeWire>(HttpMethod.Post, LedgerRoutes.Prefix + "transfers", LedgerWire.ToWire(request), cancellationToken);
        return LedgerWire.FromWire(wire!);
    }

    public async Task<BatchOutcome> ApplyBatchAsync(IReadOnlyList<TransferRequest> batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var wire = await SendAsync<BatchOutcomeWire>(HttpMethod.Post, LedgerRoutes.Prefix + "batches", new BatchWire(batch.Select(LedgerWire.ToWire).ToArray()), cancellationToken);
        return LedgerWire.FromWire(wire!);
    }

    private async Task<T?> SendAsync<T>(HttpMethod method, string path, object? body, CancellationToken cancellationToken)
        where T : class
    {
        using (var response = await RequestAsync(method, path, cancellationToken, body))
        {
            if (response.StatusCode == HttpStatusCode.NotFound && method == HttpMethod.Get)
            {
                // Only the ledger's own "no such account" is an answer (GET accounts/{id} is the one GET here): a bare 404
                // is a route or a sidecar that is not the ledger's, and a saga must not fail a valid payment as
                // account-not-found for it.
                return await ProblemTypeAsync(response, cancellationToken) == ProblemTypes.AccountNotFound
                    ? null
                    : throw new LedgerUnavailableException($"The ledger service answered GET {path} 404 without saying the account is missing.");
            }

            if ((int)response.StatusCode >= 500)
            {
                throw await FaultAsync(response, cancellationToken);
            }

            // A 4xx here is a bug on our side (the wire format) or services configured apart, not a business outcome:
            // those come back as 200 bodies.
            await EnsureAnsweredAsync(response, $"{method} {path}", cancellationToken);
            return await response.Content.ReadFromJsonAsync<T>(cancellationToken);
        }
    }

    /// <summary>The response (the caller disposes it); a ledger that did not answer is <see cref="LedgerUnavailableException"/>.</summary>
    private async Task<HttpResponseMessage> RequestAsync(HttpMethod method, string path, CancellationToken cancellationToken, object? body = null)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        try
        {
            return await http.SendAsync(request, cancellationToken);
        }
        catch (Exception exception) when (exception is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            throw new LedgerUnavailableException($"The ledger service did not answer: {exception.Message}");
        }
    }

    /// <summary>The response's problem type, or null when it is not a problem document.</summary>
    private static async Task<string?> ProblemTypeAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.Content.Headers.ContentType?.MediaType != "application/problem+json")
        {
            return null;
        }

        try
        {
            return (await response.Content.ReadFromJsonAsync<ProblemWire>(cancellationToken))?.Type;
        }
        catch (System.Text.Json.JsonException)
        {
            return null; // not a problem document after all
        }
    }

    /// <summary>A 2xx goes on; a 4xx is <see cref="LedgerRefusedRequestException"/> with the ledger's problem type and
    /// detail (which name no secret: the ledger's refusals say what was refused and why).</summary>
    private static async Task EnsureAnsweredAsync(HttpResponseMessage response, string call, CancellationToken cancellationToken)
    {
        var status = (int)response.StatusCode;
        if (status is >= 200 and < 300)
        {
            return;
        }

        if (status is UnauthorizedStatus or RequestTimeoutStatus)
        {
            // Not a refusal of what was asked: this app's credentials mid-rotation, or a request cut short on the way —
            // asked again, as an outage is.
            throw new LedgerUnavailableException($"The ledger service answered {call} {status}.");
        }

        ProblemWire? problem = null;
        if (response.Content.Headers.ContentType?.MediaType == "application/problem+json")
        {
            try
            {
                problem = await response.Content.ReadFromJsonAsync<ProblemWire>(cancellationToken);
            }
            catch (System.Text.Json.JsonException)
            {
                // not a problem document after all: the status alone
            }
        }

        throw new LedgerRefusedRequestException(status, problem?.Type,
            $"The ledger service refused {call}: {status} {problem?.Type ?? "(no problem type)"}: {Cut(problem?.Detail)}");
    }

    /// <summary>A detail for a log line: bounded, control characters shown as '?'.</summary>
    private static string Cut(string? detail)
    {
        const int MaxShown = 300;
        var text = detail ?? string.Empty;
        text = text.Length > MaxShown ? text[..MaxShown] + "…" : text;
        return string.Concat(text.Select(c => char.IsControl(c) ? '?' : c));
    }

    /// <summary>A 5xx as the fault it reports: the ledger's problem type tells a write that is committed but not yet
    /// replicated, or refused because this region is passive, from a ledger that is simply unavailable.</summary>
    private static async Task<Exception> FaultAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var status = (int)response.StatusCode;
        var type = await ProblemTypeAsync(response, cancellationToken);
        return type switch
        {
            ProblemTypes.ReplicationPending => new LedgerReplicationPendingException($"The ledger service answered {status}: committed, not yet replicated."),
            ProblemTypes.RegionNotWritable => new RegionNotWritableException($"The ledger service answered {status}: this region does not accept writes now."),
            _ => new LedgerUnavailableException($"The ledger service answered {status}."),
        };
    }

    private const int UnauthorizedStatus = 401;
    private const int RequestTimeoutStatus = 408;

    private sealed record ProblemWire(string? Type, string? Detail = null);
}

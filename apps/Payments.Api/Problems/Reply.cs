using System.Globalization;
using System.Text;
using System.Text.Json;
using Payments.Domain;

namespace Payments.Api.Problems;

/// <summary>A response as bytes-to-be: status, body, content type. Handlers produce these so that an idempotent
/// replay can send exactly the first response again (same status, same body).</summary>
public sealed record Reply(int StatusCode, string Body, string ContentType)
{
    public const string JsonContentType = "application/json";

    /// <summary>The handler already stored this answer as the Idempotency-Key's response, in the transaction of the
    /// write it answers for (<see cref="Payments.Etcd.IdempotencyStore.AddCompletion"/>); nothing is left to record.</summary>
    public bool Recorded { get; init; }
    public const string ProblemContentType = "application/problem+json";

    public static Reply Json(int statusCode, object body) =>
        new(statusCode, JsonSerializer.Serialize(body, ApiJson.Output), JsonContentType);

    public static Reply Problem(int statusCode, string type, string title, string? detail = null, IDictionary<string, object?>? extensions = null)
    {
        var problem = new Dictionary<string, object?>
        {
            ["type"] = type,
            ["title"] = title,
            ["status"] = statusCode,
        };
        if (detail is not null)
        {
            problem["detail"] = detail;
        }

        foreach (var (key, value) in extensions ?? new Dictionary<string, object?>())
        {
            problem[key] = value;
        }

        return new Reply(statusCode, JsonSerializer.Serialize(problem, ApiJson.Output), ProblemContentType);
    }

    public static Reply Malformed(string detail) =>
        Problem(StatusCodes.Status400BadRequest, ProblemTypes.MalformedRequest, "The request is malformed.", detail);

    public static Reply Invalid(IReadOnlyDictionary<string, string> errors) =>
        Problem(StatusCodes.Status400BadRequest, ProblemTypes.ValidationFailed, "One or more fields are invalid.",
            string.Join(" ", errors.Values),
            new Dictionary<string, object?> { ["errors"] = errors });

    public static Reply AccountNotFound(string accountId) =>
        Problem(StatusCodes.Status404NotFound, ProblemTypes.AccountNotFound, "Account not found.", $"No account '{Echo(accountId)}' for this merchant.");

    /// <summary>For the operator's routes, which name ledger accounts, not a merchant's.</summary>
    public static Reply LedgerAccountNotFound(string ledgerAccountId) =>
        Problem(StatusCodes.Status404NotFound, ProblemTypes.AccountNotFound, "Account not found.", $"The ledger has no account '{Echo(ledgerAccountId)}'.");

    public static Reply PaymentNotFound(string paymentId) =>
        Problem(StatusCodes.Status404NotFound, ProblemTypes.PaymentNotFound, "Payment not found.", $"No payment '{Echo(paymentId)}' for this merchant.");

    /// <summary>Most characters of a caller's value a problem's detail repeats: enough to recognise any valid id, while
    /// a path of thousands of characters is not sent back whole.</summary>
    public const int MaxEcho = 64;

    /// <summary>A caller's value as a detail repeats it: at most <paramref name="max"/> characters, marked when cut;
    /// control and invisible formatting characters (line breaks, zero-width, bidirectional overrides) shown as
    /// <c>\uXXXX</c>, as free text refuses them: repeated as they are, a line break or an override in an id rewrote
    /// what an operator's dashboard or a merchant's log showed of the answer.</summary>
    public static string Echo(string value, int max = MaxEcho)
    {
        var cut = value.Length <= max ? value : value[..(char.IsHighSurrogate(value[max - 1]) ? max - 1 : max)] + "…"; // never half a pair
        if (!cut.EnumerateRunes().Any(Payments.Api.Apis.Validate.IsHiddenOrControl))
        {
            return cut;
        }

        // By runes, with free text's own test: line and paragraph separators, and format characters beyond the BMP.
        var shown = new StringBuilder(cut.Length + 16);
        foreach (var rune in cut.EnumerateRunes())
        {
            _ = Payments.Api.Apis.Validate.IsHiddenOrControl(rune)
                ? shown.Append(rune.IsBmp ? string.Create(CultureInfo.InvariantCulture, $"\\u{rune.Value:X4}") : string.Create(CultureInfo.InvariantCulture, $"\\U{rune.Value:X8}"))
                : shown.Append(rune.ToString());
        }

        return shown.ToString();
    }

    public static Reply Unavailable(string detail) =>
        Problem(StatusCodes.Status503ServiceUnavailable, ProblemTypes.ServiceUnavailable, "The service is temporarily unavailable.", detail);

    public bool IsServerError => StatusCode >= 500;

    public IResult ToResult() => Results.Text(Body, ContentType, Encoding.UTF8, StatusCode);
}

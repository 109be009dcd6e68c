using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;
using Payments.Domain;

namespace Payments.ServiceDefaults;

/// <summary>Every refusal of an internal app (ledger, risk, orchestrator) is problem+json with a stable type of ours,
/// like the public API's: a body the framework could not bind (malformed JSON, a wrong type, an empty body) was a bare
/// 400, an unknown route a bare 404, and an exception a bare 500. No exception text reaches the caller; the log has it.</summary>
public static class InternalProblems
{
    /// <summary>Call first: the handlers below must wrap everything else.</summary>
    public static void UseInternalProblems(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        // A request Kestrel found bad (a body too slow, too large, cut short) is the caller's, answered as such: not
        // logged as an unhandled exception with its stack trace, which on-call reads as a defect of ours.
        app.UseExceptionHandler(new ExceptionHandlerOptions
        {
            ExceptionHandler = WriteUnhandledAsync,
            // Nor a call its caller gave up on meanwhile (the API's 10 s on a start while the workflow engine was frozen
            // wrote an unhandled exception per call, "Call canceled by the client": a fault probe): no one is answered.
            SuppressDiagnosticsCallback = suppress => UnreadableBodies.IsCallers(suppress.Exception) || suppress.HttpContext.RequestAborted.IsCancellationRequested,
        });
        app.UseStatusCodePages(async pages =>
        {
            var status = pages.HttpContext.Response.StatusCode;
            var (type, title) = status switch
            {
                StatusCodes.Status400BadRequest => (ProblemTypes.MalformedRequest, "The request is malformed."),
                StatusCodes.Status404NotFound => (ProblemTypes.NotFound, "Not found."),
                StatusCodes.Status405MethodNotAllowed => (ProblemTypes.MethodNotAllowed, "This method is not allowed here; the Allow header lists those that are."),
                StatusCodes.Status413PayloadTooLarge => (ProblemTypes.PayloadTooLarge, "The request body is too large."),
                StatusCodes.Status415UnsupportedMediaType => (ProblemTypes.UnsupportedMediaType, "The request body must be application/json in UTF-8, uncompressed."),
                _ => (ProblemTypes.Base + "http-" + status.ToString(CultureInfo.InvariantCulture), ReasonPhrases.GetReasonPhrase(status)),
            };
            await Results.Problem(title: title, statusCode: status, type: type, detail: status == StatusCodes.Status400BadRequest ? ShapeDetail : null)
                .ExecuteAsync(pages.HttpContext);
        });
        app.Use(MethodNames.RefuseUnimplementedAsync); // "post" is no POST: routing ignores case, the access policy does not
        app.Use(async (context, next) =>
        {
            // ASP.NET reads a JSON body in the charset its Content-Type names, and throws for one it does not know
            // (InvalidOperationException, unhandled: a 500 for the caller's mistake). Every body here is UTF-8 JSON.
            // Nor compressed: a body labelled gzip was read as plain JSON (another reader on the way would inflate it).
            if (NamesAnotherCharset(context.Request.ContentType)
                || context.Request.Headers.ContentEncoding.Any(coding => !string.IsNullOrWhiteSpace(coding) && !string.Equals(coding.Trim(), "identity", StringComparison.OrdinalIgnoreCase)))
            {
                await Results.Problem(title: "The request body must be application/json in UTF-8, uncompressed.", statusCode: StatusCodes.Status415UnsupportedMediaType,
                    type: ProblemTypes.UnsupportedMediaType).ExecuteAsync(context);
                return;
            }

            await next(context);
        });
    }

    /// <summary>What a 400 of the framework's binding means here (the title is the type's, the same everywhere).</summary>
    private const string ShapeDetail = "The request body is malformed or not of the expected shape.";

    /// <summary>Whether a Content-Type names a charset other than UTF-8 (none named reads as UTF-8).</summary>
    internal static bool NamesAnotherCharset(string? contentType) =>
        Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(contentType, out var parsed)
            ? parsed.Charset.HasValue && !string.Equals(parsed.Charset.Value.Trim('"'), "utf-8", StringComparison.OrdinalIgnoreCase)
            : !string.IsNullOrEmpty(contentType) && contentType.Contains("charset", StringComparison.OrdinalIgnoreCase);

    private static async Task WriteUnhandledAsync(HttpContext context)
    {
        var error = context.Features.Get<IExceptionHandlerFeature>()?.Error;
        var result = error switch
        {
            BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } =>
                Results.Problem(title: "The request body is too large.", statusCode: StatusCodes.Status413PayloadTooLarge, type: ProblemTypes.PayloadTooLarge),
            { } unreadable when unreadable is JsonException || UnreadableBodies.IsCallers(unreadable) =>
                Results.Problem(title: "The request is malformed.", detail: ShapeDetail, statusCode: StatusCodes.Status400BadRequest, type: ProblemTypes.MalformedRequest),
            _ => Results.Problem(title: "Something went wrong on our side.", detail: $"Trace id {context.TraceIdentifier}; the service's log has the cause.",
                statusCode: StatusCodes.Status500InternalServerError, type: ProblemTypes.InternalError),
        };
        await result.ExecuteAsync(context);
    }
}

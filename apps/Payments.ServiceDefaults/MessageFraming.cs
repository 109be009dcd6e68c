using Microsoft.AspNetCore.Http;
using Payments.Domain;

namespace Payments.ServiceDefaults;

/// <summary>Request framing Kestrel takes that RFC 9112 calls faulty (an HTTP/1.0 request with Transfer-Encoding,
/// chunked applied twice): a front proxy that frames the message by the
/// rules may read it otherwise than this server did — the stuff of request smuggling (a probe). Each is 400
/// <c>malformed-request</c>, and the connection is closed after the answer (§6.1, §6.3: nothing after it on the
/// connection can be trusted to start where this server thinks).</summary>
public static class MessageFraming
{
    /// <summary>What is faulty about the request's framing, or null when nothing is.</summary>
    public static string? Fault(HttpRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var transfer = request.Headers.TransferEncoding;
        if (transfer.Count > 0 && string.Equals(request.Protocol, "HTTP/1.0", StringComparison.Ordinal))
        {
            // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding is faulty framing, even with a Content-Length
            // (Kestrel decoded it as chunked and kept the connection open).
            return "An HTTP/1.0 request must not carry Transfer-Encoding.";
        }

        var chunked = transfer.Sum(value => (value ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Count(coding => string.Equals(coding, "chunked", StringComparison.OrdinalIgnoreCase)));
        if (chunked > 1)
        {
            return "Transfer-Encoding names chunked more than once (RFC 9112 §6.1)."; // applied twice, or two header lines
        }

        // Not seen here: a signed Content-Length ("+38", RFC 9110 §8.6: digits only), which Kestrel parses before the
        // application sees the header and gives as 38 — a proxy that frames by the rules refuses it rather than reads it
        // otherwise.
        return null;
    }

    /// <summary>Middleware: the answer to <see cref="Fault"/>, the connection closed after it; else the next.</summary>
    public static Task RefuseFaultyAsync(HttpContext context, RequestDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        if (Fault(context.Request) is not { } fault)
        {
            return next(context);
        }

        context.Response.Headers.Connection = "close"; // Kestrel closes the connection after this answer
        return Results.Problem(fault, statusCode: StatusCodes.Status400BadRequest, type: ProblemTypes.MalformedRequest, title: "The request is malformed.")
            .ExecuteAsync(context);
    }
}

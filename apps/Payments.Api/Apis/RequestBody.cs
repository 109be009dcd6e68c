using System.Text.Json;
using Payments.Api.Problems;
using Payments.Domain;

namespace Payments.Api.Apis;

/// <summary>Reads a JSON request body within a size bound and parses it strictly, turning every way it can be wrong
/// into a problem reply (never an exception that reaches the caller).</summary>
public static partial class RequestBody
{
    /// <summary>Largest body a v1 request may have: every request is a handful of short fields.</summary>
    public const int MaxBytes = 16 * 1024;

    /// <summary>An optional body: no bytes and no problem when there is none (no body at all, or an empty one), else
    /// as <see cref="ReadAsync"/>. Whether there is one is read from the request itself, not from its headers alone: a
    /// chunked body without a Content-Type (what .NET's StreamContent sends) was taken for no body and its fields
    /// silently ignored — a secret rotation asked to end the old secret at once kept it for a day, a key asked with
    /// narrow scopes got the default ones.</summary>
    public static async Task<(byte[]? Bytes, Reply? Problem)> ReadOptionalAsync(HttpContext context)
    {
        var request = context.Request;
        if (request.ContentLength is 0 || context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestBodyDetectionFeature>() is { CanHaveBody: false })
        {
            return (null, null);
        }

        if (request.ContentType is null)
        {
            // Bodiless in all but framing (an empty chunked body) is no body; anything in it needs its type.
            var first = new byte[1];
            return await request.Body.ReadAsync(first, context.RequestAborted) == 0
                ? (null, null)
                : (null, ContentTypeProblem(null));
        }

        return await ReadAsync(context);
    }

    /// <summary>For a request that takes no fields (a decision, a deletion): a body sent is read as any other (415 for
    /// another type or a coding, 400 for a field), so that nothing is done on a request the API would refuse elsewhere
    /// (a probe: a DELETE with a gzip-coded text body deleted the endpoint). None, or an empty one, is fine.</summary>
    public static async Task<Reply?> NoFieldsProblemAsync(HttpContext context)
    {
        var (bytes, problem) = await ReadOptionalAsync(context);
        return problem ?? (bytes is null ? null : Parse<NoFields>(bytes).Problem);
    }

    /// <summary>A body with no fields: {} (or null).</summary>
    private sealed record NoFields;

    public static async Task<(byte[]? Bytes, Reply? Problem)> ReadAsync(HttpContext context)
    {
        if (ContentTypeProblem(context.Request.ContentType) is { } wrongType)
        {
            return (null, wrongType);
        }

        // A coded body (gzip, br…) is not decoded here: ignoring the header read compressed bytes as JSON (400), or took
        // a plain body that claimed a coding. RFC 9110 §15.5.16: 415 for a content coding the server does not accept.
        // The answer names what is accepted (Accept-Encoding, as §15.5.16 says it ought to); identity, however often it
        // is named, is no coding at all.
        var coding = context.Request.Headers.ContentEncoding;
        if (coding.Any(value => (value ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
                .Any(token => !string.Equals(token, "identity", StringComparison.OrdinalIgnoreCase))))
        {
            context.Response.Headers.AcceptEncoding = "identity";
            return (null, Reply.Problem(StatusCodes.Status415UnsupportedMediaType, ProblemTypes.UnsupportedMediaType,
                "The request body must be application/json in UTF-8, uncompressed.", $"Content-Encoding {Shortened(coding.ToString())} is not accepted; send the JSON as it is."));
        }

        // Kestrel undoes chunked framing only: "Transfer-Encoding: gzip, chunked" left the gzip bytes to be read as JSON.
        if (Payments.ServiceDefaults.TransferCodings.OtherThanChunked(context.Request.Headers.TransferEncoding) is { } transfer)
        {
            return (null, Reply.Problem(StatusCodes.Status415UnsupportedMediaType, ProblemTypes.UnsupportedMediaType,
                "The request body must be application/json in UTF-8, uncompressed.", $"Transfer-Encoding {Shortened(transfer)} is not accepted; send the JSON as it is (chunked alone is fine)."));
        }

        if (context.Request.ContentLength > MaxBytes)
        {
            return (null, TooLarge());
        }

        using var buffer = new MemoryStream();
        var chunk = new byte[4096];
        int read;
        while ((read = await context.Request.Body.ReadAsync(chunk, context.RequestAborted)) > 0)
        {
            buffer.Write(chunk, 0, read);
            if (buffer.Length > MaxBytes)
            {
                return (null, TooLarge());
            }
        }

        return Utf8(buffer.ToArray());
    }

    /// <summary>Exactly <c>application/json</c> (not <c>application/jsonp</c> or <c>application/json-seq</c>, which a
    /// prefix check let through), in UTF-8: without a charset or with <c>utf-8</c> (or <c>utf8</c>). Another charset is refused rather
    /// than its bytes read as UTF-8, which would store other text than the client sent.</summary>
    private static Reply? ContentTypeProblem(string? contentType)
    {
        if (string.IsNullOrWhiteSpace(contentType))
        {
            // A probe: a POST sent with no body and no Content-Type was told only the type, which it had not given.
            return Reply.Problem(StatusCodes.Status415UnsupportedMediaType, ProblemTypes.UnsupportedMediaType,
                "The request body must be application/json in UTF-8, uncompressed.", "The request names no Content-Type: send its JSON body with Content-Type: application/json.");
        }

        if (!Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(contentType, out var parsed)
            || !parsed.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase))
        {
            return Reply.Problem(StatusCodes.Status415UnsupportedMediaType, ProblemTypes.UnsupportedMediaType,
                "The request body must be application/json in UTF-8, uncompressed.", $"Content-Type {Shortened(contentType)} is not application/json.");
        }

        // Every charset parameter, not the first alone: "charset=utf-8; charset=latin1" named two, and an empty one none.
        foreach (var parameter in parsed.Parameters.Where(parameter => parameter.Name.Equals("charset", StringComparison.OrdinalIgnoreCase)))
        {
            var charset = Microsoft.Net.Http.Headers.HeaderUtilities.RemoveQuotes(parameter.Value);
            if (!(charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase) || charset.Equals("utf8", StringComparison.OrdinalIgnoreCase)))
            {
                return Reply.Problem(StatusCodes.Status415UnsupportedMediaType, ProblemTypes.UnsupportedMediaType,
                    "The request body must be application/json in UTF-8, uncompressed.", $"JSON request bodies are UTF-8 (RFC 8259 §8.1); charset={Shortened(charset.Value)} is not accepted.");
            }
        }

        return null;
    }

    /// <summary>A caller's text repeated in a problem, at most <see cref="MaxEchoed"/> characters.</summary>
    private static string Shortened(string? text) => Reply.Echo(text ?? string.Empty, MaxEchoed);

    private const int MaxEchoed = 40;

    /// <summary>Characters of the parser's message repeated at most (it may quote the caller's text).</summary>
    private const int MaxParserMessage = 200;

    /// <summary>JSON on the wire is UTF-8 (RFC 8259 §8.1). A leading UTF-8 byte order mark, which that section lets a
    /// parser ignore and some Windows tools write, is dropped — so the same request with or without it is the same
    /// request, for its idempotency fingerprint too. A body in UTF-16 or UTF-32 (a byte order mark, or a NUL among
    /// its first bytes: JSON starts with ASCII, RFC 4627 §3) or with bytes that are not UTF-8 is not JSON in UTF-8:
    /// 415, as docs/api.md says, "as a result of inspecting the data" (RFC 9110 §15.5.16). Before, the first was a 400
    /// and the second "not of the field's type", of a field that was a string.</summary>
    private static (byte[]? Bytes, Reply? Problem) Utf8(byte[] bytes)
    {
        var text = bytes is [0xEF, 0xBB, 0xBF, ..] ? bytes[3..] : bytes;
        if (text is [0xFF, 0xFE, ..] or [0xFE, 0xFF, ..] or [0, _, ..] or [_, 0, ..])
        {
            return (null, NotUtf8("This body is in UTF-16 or UTF-32; send it in UTF-8 (RFC 8259 §8.1)."));
        }

        return System.Text.Unicode.Utf8.IsValid(text)
            ? (text, null)
            : (null, NotUtf8("This body holds bytes that are not UTF-8 (RFC 8259 §8.1); send the text in UTF-8."));
    }

    private static Reply NotUtf8(string detail) =>
        Reply.Problem(StatusCodes.Status415UnsupportedMediaType, ProblemTypes.UnsupportedMediaType, "The request body must be application/json in UTF-8, uncompressed.", detail);

    public static (T? Value, Reply? Problem) Parse<T>(byte[] bytes)
        where T : class
    {
        // A body that is JSON but no object ([1,2], "text", 5) is said as such, not as a value "not of the field's type".
        if (Array.Find(bytes, static b => b is not ((byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n')) is not (0 or (byte)'{' or (byte)'n'))
        {
            return (null, Reply.Malformed("The body must be a JSON object."));
        }

        try
        {
            var value = JsonSerializer.Deserialize<T>(bytes, ApiJson.Strict);
            return value is null ? (null, Reply.Malformed("The body must be a JSON object.")) : (value, null);
        }
        catch (JsonException exception)
        {
            return (null, Reply.Malformed(Describe(exception)));
        }
    }

    /// <summary>What was wrong with the JSON, without our internals: the reader's own messages (position and path)
    /// are returned as they are, but the serializer's name .NET types ("System.Nullable`1[System.Int64]", our
    /// contract classes), so those are said in the API's terms.</summary>
    internal static string Describe(JsonException exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        var message = exception.Message;
        if (message.Contains("isFinalBlock", StringComparison.Ordinal))
        {
            // "…while isFinalBlock is true": the reader's parameter, not the caller's words.
            return "The body holds no complete JSON value (it is empty, or it ends early).";
        }

        // The path holds the caller's property names: shown as any echo is, cut and with hidden characters escaped (a
        // probe: a 10,000-character name came back whole, and a bidi override as it was).
        var path = Reply.Echo(exception.Path ?? "$");
        if (exception.InnerException is InvalidOperationException { Message: var inner } && inner.Contains("UTF-16", StringComparison.Ordinal))
        {
            // "Cannot read invalid UTF-16 JSON text as string": an escape of half a surrogate pair (\ud800 alone).
            return $"The text at {path} is not valid Unicode: it holds half of a surrogate pair (e.g. \\ud800 without its \\udc00–\\udfff).";
        }

        // "…which is not supported in this mode. Change the reader options.": advice for whoever wrote the server; and
        // "Path: $ | LineNumber: 0 | BytePositionInLine: 36.", the parser's format: said in the API's words.
        message = message.Replace(" which is not supported in this mode", string.Empty, StringComparison.Ordinal)
            .Replace(" Change the reader options.", string.Empty, StringComparison.Ordinal);
        if (message.LastIndexOf(" Path: ", StringComparison.Ordinal) is >= 0 and var cut)
        {
            message = message[..cut]; // the last: the parser appends it, after anything of the caller's
        }

        if (!message.Contains("System.", StringComparison.Ordinal) && !message.Contains("Payments.", StringComparison.Ordinal)
            && !message.Contains(".NET", StringComparison.Ordinal))
        {
            var at = exception is { LineNumber: { } line, BytePositionInLine: { } position } ? $" (line {line + 1}, byte {position + 1})" : string.Empty;
            return $"The body is not valid JSON{at}: {Reply.Echo(message, MaxParserMessage)}";
        }

        if (UnknownProperty().Match(message) is { Success: true } unknown)
        {
            return $"The property '{Reply.Echo(unknown.Groups["name"].Value)}' is not part of this request.";
        }

        if (message.Contains("Duplicate", StringComparison.OrdinalIgnoreCase))
        {
            return $"A property appears twice at {path}.";
        }

        return $"The value at {path} is not of the field's type (amounts are whole numbers of minor units; ids, codes and texts are strings).";
    }

    /// <summary>The name as the serializer quotes it, apostrophes included (one in the name made the match fail and the
    /// answer call an unknown property a value of the wrong type).</summary>
    [System.Text.RegularExpressions.GeneratedRegex("^The JSON property '(?<name>.*)' could not be mapped", System.Text.RegularExpressions.RegexOptions.Singleline)]
    private static partial System.Text.RegularExpressions.Regex UnknownProperty();

    private static Reply TooLarge() =>
        Reply.Problem(StatusCodes.Status413PayloadTooLarge, ProblemTypes.PayloadTooLarge, "The request body is too large.",
            $"Request bodies are limited to {MaxBytes} bytes.");
}

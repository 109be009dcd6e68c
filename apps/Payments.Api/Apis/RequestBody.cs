using System.Text.Json;
using Payments.Api.Problems;
using Payments.Domain;

namespace Payments.Api.Apis;

/// <summary>Reads a JSON request body within a size bound and parses it strictly, turning every way it can be wrong
/// into a problem reply (never an exception that reaches the caller).</summary>
public static class RequestBody
{
    /// <summary>Largest body a v1 request may have: every request is a handful of short fields.</summary>
    public const int MaxBytes = 16 * 1024;

    public static async Task<(byte[]? Bytes, Reply? Problem)> ReadAsync(HttpContext context)
    {
        if (context.Request.ContentType is not { } contentType || !contentType.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
        {
            return (null, Reply.Problem(StatusCodes.Status415UnsupportedMediaType, ProblemTypes.UnsupportedMediaType,
                "The request body must be application/json."));
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

        return (buffer.ToArray(), null);
    }

    public static (T? Value, Reply? Problem) Parse<T>(byte[] bytes)
        where T : class
    {
        try
        {
            var value = JsonSerializer.Deserialize<T>(bytes, ApiJson.Strict);
            return value is null ? (null, Reply.Malformed("The body must be a JSON object.")) : (value, null);
        }
        catch (JsonException exception)
        {
            // JsonException's message names the path and position, never internals: safe and useful to return.
            return (null, Reply.Malformed(exception.Message));
        }
    }

    private static Reply TooLarge() =>
        Reply.Problem(StatusCodes.Status413PayloadTooLarge, ProblemTypes.PayloadTooLarge, "The request body is too large.",
            $"Request bodies are limited to {MaxBytes} bytes.");
}

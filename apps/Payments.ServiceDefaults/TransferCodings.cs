using Microsoft.Extensions.Primitives;

namespace Payments.ServiceDefaults;

/// <summary>Transfer codings of a request (RFC 9112 §6.1). Kestrel undoes the chunked framing only: with
/// "Transfer-Encoding: gzip, chunked" the gzip bytes were read as the body, and the edge, which forwards the body it
/// read with a length, dropped the header that said so. A body with any other coding is refused instead.</summary>
public static class TransferCodings
{
    /// <summary>The codings other than chunked, as sent, or null when there are none.</summary>
    public static string? OtherThanChunked(StringValues transferEncoding)
    {
        foreach (var value in transferEncoding)
        {
            foreach (var coding in (value ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (!string.Equals(coding, "chunked", StringComparison.OrdinalIgnoreCase))
                {
                    return transferEncoding.ToString();
                }
            }
        }

        return null;
    }
}

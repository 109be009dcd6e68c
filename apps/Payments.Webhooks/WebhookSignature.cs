using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Payments.Webhooks;

/// <summary>What a receiver learns from <see cref="WebhookSignature.Verify"/>.</summary>
public enum WebhookVerification
{
    /// <summary>Signed by one of the secrets, within the tolerance: process it, once per event id — the body's
    /// (<see cref="WebhookSignature.EventIdOf"/>), which is signed.</summary>
    Valid,

    /// <summary>No signature header, or one that does not parse.</summary>
    Malformed,

    /// <summary>Timestamp further from now than the tolerance: possibly a replay of a captured request.</summary>
    OutsideTolerance,

    /// <summary>No signature matches any of the secrets: not from us, or the body was changed.</summary>
    BadSignature,
}

/// <summary>The signature of a webhook delivery: header <see cref="Header"/> =
/// <c>t=&lt;unix seconds&gt;,v1=&lt;hex HMAC-SHA256&gt;[,v1=…]</c>, each <c>v1</c> the HMAC-SHA256, keyed with one of the
/// endpoint's signing secrets, of <c>"{t}.{raw body}"</c> (UTF-8). While a rotated secret overlaps its successor, a
/// delivery carries one <c>v1</c> per secret, so a receiver that has either one verifies it. The timestamp is signed
/// with the body: a captured request replayed later falls outside the tolerance.</summary>
/// <remarks>The scheme Stripe's and Svix's receivers know (timestamp, dot, body; hex; several signatures during a
/// rotation), so receivers need no new ideas. Verify over the raw bytes received — never over re-serialised JSON.</remarks>
public static class WebhookSignature
{
    /// <summary>The header carrying timestamp and signatures.</summary>
    public const string Header = "DaprPayments-Signature";

    /// <summary>The event's id, a copy of the body's <c>id</c> for routing and logs. It is not signed: receivers
    /// de-duplicate on the body's (<see cref="EventIdOf"/>) — delivery is at least once, and a captured delivery
    /// replayed within the tolerance under a new header id still verifies.</summary>
    public const string IdHeader = "DaprPayments-Event-Id";

    /// <summary>The event id in a delivery's body (its top-level <c>id</c>), which the signature covers: what a receiver
    /// de-duplicates on after <see cref="Verify"/> said <see cref="WebhookVerification.Valid"/>. Null for a body
    /// without one (never sent).</summary>
    public static string? EventIdOf(ReadOnlySpan<byte> body)
    {
        try
        {
            var reader = new System.Text.Json.Utf8JsonReader(body);
            if (!reader.Read() || reader.TokenType != System.Text.Json.JsonTokenType.StartObject)
            {
                return null;
            }

            while (reader.Read() && reader.TokenType == System.Text.Json.JsonTokenType.PropertyName)
            {
                var isId = reader.ValueTextEquals("id"u8);
                reader.Read();
                if (isId)
                {
                    return reader.TokenType == System.Text.Json.JsonTokenType.String ? reader.GetString() : null;
                }

                reader.Skip();
            }
        }
        catch (System.Text.Json.JsonException)
        {
            // not JSON: no id
        }

        return null;
    }

    /// <summary>How far a delivery's timestamp may be from the receiver's clock when it checks: 5 minutes, as
    /// Stripe's libraries default. Each retry is signed afresh, so a late retry is not refused for its age.</summary>
    public static readonly TimeSpan DefaultTolerance = TimeSpan.FromMinutes(5);

    /// <summary>Signing secrets are this prefix and 32 random bytes in hex; the prefix lets secret scanners find a leaked one.</summary>
    public const string SecretPrefix = "whsec_";

    /// <summary>A new random signing secret.</summary>
    public static string NewSecret() => SecretPrefix + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));

    /// <summary>The header value for <paramref name="body"/> sent at <paramref name="timestamp"/>, one signature per secret.</summary>
    public static string Sign(IReadOnlyList<string> secrets, DateTimeOffset timestamp, ReadOnlySpan<byte> body)
    {
        ArgumentNullException.ThrowIfNull(secrets);
        if (secrets.Count == 0)
        {
            throw new ArgumentException("At least one secret is needed.", nameof(secrets));
        }

        var seconds = timestamp.ToUnixTimeSeconds();
        var header = new StringBuilder("t=").Append(seconds.ToString(CultureInfo.InvariantCulture));
        foreach (var secret in secrets)
        {
            header.Append(",v1=").Append(Convert.ToHexStringLower(Mac(secret, seconds, body)));
        }

        return header.ToString();
    }

    /// <summary>Checks a delivery: <paramref name="header"/> as received, <paramref name="body"/> the raw bytes,
    /// <paramref name="secrets"/> the secrets the receiver holds (old and new during a rotation).</summary>
    public static WebhookVerification Verify(string? header, ReadOnlySpan<byte> body, IReadOnlyList<string> secrets, DateTimeOffset now, TimeSpan? tolerance = null)
    {
        ArgumentNullException.ThrowIfNull(secrets);
        if (!TryParse(header, out var seconds, out var signatures))
        {
            return WebhookVerification.Malformed;
        }

        var allowed = tolerance ?? DefaultTolerance;
        if (Math.Abs(now.ToUnixTimeSeconds() - seconds) > allowed.TotalSeconds)
        {
            return WebhookVerification.OutsideTolerance;
        }

        foreach (var secret in secrets)
        {
            var expected = Mac(secret, seconds, body);
            if (signatures.Any(signature => CryptographicOperations.FixedTimeEquals(signature, expected)))
            {
                return WebhookVerification.Valid;
            }
        }

        return WebhookVerification.BadSignature;
    }

    /// <summary>Most signatures a header may carry (a rotation overlap needs two): a bound on the work a forged header costs.</summary>
    public const int MaxSignatures = 8;

    private static bool TryParse(string? header, out long seconds, out List<byte[]> signatures)
    {
        seconds = 0;
        signatures = [];
        if (string.IsNullOrEmpty(header) || header.Length > 1024)
        {
            return false;
        }

        var hasTime = false;
        foreach (var part in header.Split(','))
        {
            var (name, value) = part.IndexOf('=', StringComparison.Ordinal) is var at and > 0 ? (part[..at].Trim(), part[(at + 1)..].Trim()) : ("", "");
            if (name == "t")
            {
                hasTime = long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out seconds);
            }
            else if (name == "v1" && value.Length == 64 && signatures.Count < MaxSignatures && IsHex(value))
            {
                signatures.Add(Convert.FromHexString(value));
            }
        }

        return hasTime && signatures.Count > 0;
    }

    private static bool IsHex(string value) => value.All(Uri.IsHexDigit);

    private static byte[] Mac(string secret, long seconds, ReadOnlySpan<byte> body)
    {
        var prefix = Encoding.UTF8.GetBytes(seconds.ToString(CultureInfo.InvariantCulture) + ".");
        var message = new byte[prefix.Length + body.Length];
        prefix.CopyTo(message, 0);
        body.CopyTo(message.AsSpan(prefix.Length));
        return HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), message);
    }
}

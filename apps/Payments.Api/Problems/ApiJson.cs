using System.Text.Json;
using System.Text.Json.Serialization;

namespace Payments.Api.Problems;

/// <summary>JSON settings: strict on the way in (a typo or a quoted number is the caller's mistake, reported, never
/// guessed at), plain camelCase on the way out.</summary>
public static class ApiJson
{
    public static JsonSerializerOptions Strict { get; } = new(JsonSerializerDefaults.Web)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        // "AmountMinor" is not "amountMinor": the web defaults matched names in any case, which the docs' strictness
        // did not promise; now such a field is unknown, and refused.
        PropertyNameCaseInsensitive = false,
        NumberHandling = JsonNumberHandling.Strict,
        AllowTrailingCommas = false,
        AllowDuplicateProperties = false,
        ReadCommentHandling = JsonCommentHandling.Disallow,
        Converters = { new WholeNumbers() },
    };

    public static JsonSerializerOptions Output { get; } = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        // Bodies are application/json, never embedded in HTML: no need to escape quotes and apostrophes as \u0027.
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>A request's whole numbers (amounts in minor units, seconds): a whole number too large for 64 bits is
    /// read as the largest (or smallest) one, which every field's own rule then refuses as it refuses any value past
    /// its bound (an amount: 400 <c>validation-failed</c>, "at most 10^15"; an overdraft limit: 422
    /// <c>overdraft-limit-exceeded</c>); it was <c>malformed-request</c> ("not of the field's type"), though it is as
    /// whole a number as any. A fraction or an exponent stays not a whole number.</summary>
    private sealed class WholeNumbers : JsonConverter<long>
    {
        public override long Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            if (reader.TokenType == JsonTokenType.Number)
            {
                if (reader.TryGetInt64(out var value))
                {
                    return value;
                }

                var text = reader.HasValueSequence ? System.Buffers.BuffersExtensions.ToArray(reader.ValueSequence) : reader.ValueSpan.ToArray();
                var digits = text.AsSpan(text.Length > 0 && text[0] == (byte)'-' ? 1 : 0);
                if (digits.Length > 0 && !digits.ContainsAnyExcept("0123456789"u8))
                {
                    return text[0] == (byte)'-' ? long.MinValue : long.MaxValue;
                }
            }

            throw new JsonException(); // the serializer names the field and its type, as for any other mismatch
        }

        public override void Write(Utf8JsonWriter writer, long value, JsonSerializerOptions options) => writer.WriteNumberValue(value);
    }
}

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
    };

    public static JsonSerializerOptions Output { get; } = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        // Bodies are application/json, never embedded in HTML: no need to escape quotes and apostrophes as \u0027.
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}

namespace Payments.Api.Apis;

/// <summary>Field checks shared by the endpoints; each failure adds a message under the field's JSON name.</summary>
internal static class Validate
{
    /// <summary>The largest amount one request may move: far above any real payment, far below overflow.</summary>
    public const long MaxAmountMinor = Payments.Domain.MoneyLimits.CeilingMinor;

    /// <summary>UTF-16 units a character of free text may take on average (an emoji is two; a flag is four).</summary>
    public const int MaxUnitsPerCharacter = 4;

    public static Domain.Currency? Currency(string? code, Dictionary<string, string> errors)
    {
        if (code is null)
        {
            errors["currency"] = "currency is required.";
            return null;
        }

        if (!Domain.Currency.TryFromCode(code, out var currency))
        {
            // At most a few characters of the caller's value come back, hidden ones escaped: an answer never grows with
            // the input, nor carries a line break or bidi override into a log or dashboard (a probe).
            var shown = Payments.Api.Problems.Reply.Echo(code, 8);
            errors["currency"] = $"currency must be an active ISO 4217 code in upper case (e.g. USD); '{shown}' is not.";
        }

        return currency;
    }

    /// <summary>A free-text field (a payment's reference, a webhook's description): at most
    /// <paramref name="maxCharacters"/> characters as a person counts them (text elements: an emoji is one), and
    /// none a person cannot see or that reorders what is shown — control characters, bidirectional overrides,
    /// zero-width and other format characters — since the text reaches merchants' dashboards and webhook receivers
    /// as it is stored.</summary>
    public static void Text(string field, string? value, int maxCharacters, Dictionary<string, string> errors)
    {
        if (value is null)
        {
            return;
        }

        if (HiddenText.Contains(value))
        {
            errors[field] = $"{field} must not contain control characters, line breaks, invisible formatting characters (e.g. U+200B, U+202E) "
                + "or noncharacters (e.g. U+FFFF).";
        }
        else if (string.IsNullOrWhiteSpace(value))
        {
            // Blank shows as nothing wherever it is read back (a list of endpoints, a statement line, a merchant's
            // name); a probe found "" and "   " references taken and echoed while a blank description was refused.
            errors[field] = $"{field} must not be blank; leave it out for none.";
        }
        else if (value.Length > maxCharacters && new System.Globalization.StringInfo(value).LengthInTextElements > maxCharacters)
        {
            errors[field] = $"{field} must be at most {maxCharacters} characters.";
        }
        else if (value.Length > maxCharacters * MaxUnitsPerCharacter)
        {
            // The units bound keeps stored text bounded too: one text element may carry any number of combining marks.
            // Said as such: "at most 140 characters" for one character of 601 units named a rule the text kept.
            errors[field] = $"{field} must be at most {maxCharacters} characters of at most {maxCharacters * MaxUnitsPerCharacter} UTF-16 code units in all "
                + $"(combining marks and the parts of joined emoji count as units); this one has {value.Length}.";
        }
    }

    /// <summary>Unknown query parameters named in the answer at most (the answer never grows with the request).</summary>
    public const int MaxUnknownQueryNamed = 4;

    /// <summary>Refuses query parameters the endpoint does not take, as bodies refuse unknown fields (and as Stripe
    /// does): a consumer paging events with <c>?starting_after=</c> got the first page again and again, and a
    /// <c>?wiat=30</c> answered at once (a black-box probe). A known one given more than once is refused as such (it
    /// was answered with the rule for one value, "wait must be a whole number…", though each value kept it). Called
    /// after the endpoint's own checks of each value, so that its answer for a repeated one is this.
    /// <paramref name="known"/> in the order the answer lists them.</summary>
    public static void QueryParameters(Microsoft.AspNetCore.Http.IQueryCollection query, string[] known, Dictionary<string, string> errors)
    {
        foreach (var name in known.Where(name => query.TryGetValue(name, out var values) && values.Count > 1))
        {
            errors[name] = $"{name} is given {query[name].Count} times; give it once.";
        }

        // Names match exactly, as body fields do: ASP.NET's query reads ignore case, so "?WAIT=3" waited and
        // "?Status=" was read as status, a spelling no document gives (a probe). Another case is an unknown name.
        var unknown = query.Keys.Where(name => !known.Contains(name, StringComparer.Ordinal)).ToArray();
        if (unknown.Length == 0)
        {
            return;
        }

        // Only a short, printable ASCII name is repeated back; any other is described ("one with an empty name" read
        // as a sentence; "Unknown query parameter a parameter with another name" did not, a probe).
        var named = unknown.Take(MaxUnknownQueryNamed)
            .Select(name => name.Length is > 0 and <= 32 && name.All(character => character is > ' ' and < '\u007f') ? $"'{name}'"
                : name.Length == 0 ? "one with an empty name" : "one whose name is not short printable ASCII");
        errors["query"] = $"Unknown query parameter{(unknown.Length > 1 ? "s" : "")}: {string.Join(", ", named)}{(unknown.Length > MaxUnknownQueryNamed ? " and more" : "")}; "
            + (known.Length == 0 ? "this endpoint takes none." : $"this endpoint takes {string.Join(", ", known)}.");
    }

    /// <summary>The merchants' reads that take no query parameter (none documented: the two that take some check their
    /// own, <see cref="QueryParameters"/>) refuse one: a probe's
    /// <c>GET /v1/webhook-endpoints?limit=5</c> listed every endpoint, as if paged. Writes still ignore one: their
    /// answer is kept under their Idempotency-Key, and a retry of a payment accepted before this rule, refused for a
    /// parameter the write always ignored, would tell its client that the payment did not happen. The operator's reads
    /// too (a probe: ?limit=5 listed every key): their caller is authenticated before routing
    /// (<see cref="Payments.ServiceDefaults.Security.OperatorAuthentication.UseOperatorAuthenticationForAdmin"/>), so a 400
    /// answers only the operator.</summary>
    public static ValueTask<object?> RefuseQueryWhereNoneIsTakenAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        var http = context.HttpContext;
        if (http.Request.Query.Count == 0
            || !(HttpMethods.IsGet(http.Request.Method) || HttpMethods.IsHead(http.Request.Method))
            || !(http.Request.Path.StartsWithSegments("/v1", StringComparison.OrdinalIgnoreCase) || http.Request.Path.StartsWithSegments("/admin", StringComparison.OrdinalIgnoreCase))
            || http.GetEndpoint()?.Metadata.OfType<Payments.Api.OpenApi.DocumentedParameter>().Any(parameter => parameter.In == Microsoft.OpenApi.ParameterLocation.Query) != false)
        {
            return next(context);
        }

        var errors = new Dictionary<string, string>();
        QueryParameters(http.Request.Query, [], errors);
        return ValueTask.FromResult<object?>(Payments.Api.Problems.Reply.Invalid(errors).ToResult());
    }

    /// <summary>A rune a reader does not see, or a control (<see cref="HiddenText.IsHiddenOrControl"/>).</summary>
    internal static bool IsHiddenOrControl(System.Text.Rune rune) => HiddenText.IsHiddenOrControl(rune);

    public static long? Amount(long? amountMinor, Dictionary<string, string> errors)
    {
        switch (amountMinor)
        {
            case null:
                errors["amountMinor"] = "amountMinor is required (an integer number of minor units, e.g. 1250 for 12.50).";
                return null;
            case <= 0:
                errors["amountMinor"] = "amountMinor must be a positive integer number of minor units.";
                return null;
            case > MaxAmountMinor:
                errors["amountMinor"] = $"amountMinor must be at most {MaxAmountMinor}.";
                return null;
            default:
                return amountMinor;
        }
    }
}

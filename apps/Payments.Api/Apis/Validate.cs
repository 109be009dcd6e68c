namespace Payments.Api.Apis;

/// <summary>Field checks shared by the endpoints; each failure adds a message under the field's JSON name.</summary>
internal static class Validate
{
    /// <summary>The largest amount one request may move: far above any real payment, far below overflow.</summary>
    public const long MaxAmountMinor = 1_000_000_000_000_000;

    public static Domain.Currency? Currency(string? code, Dictionary<string, string> errors)
    {
        if (code is null)
        {
            errors["currency"] = "currency is required.";
            return null;
        }

        if (!Domain.Currency.TryFromCode(code, out var currency))
        {
            // At most a few characters of the caller's value come back: an answer never grows with the input.
            var shown = code.Length <= 8 ? code : code[..8] + "…";
            errors["currency"] = $"currency must be an active ISO 4217 code in upper case (e.g. USD); '{shown}' is not.";
        }

        return currency;
    }

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

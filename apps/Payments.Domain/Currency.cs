using System.Collections.Frozen;
using System.Diagnostics.CodeAnalysis;

namespace Payments.Domain;

/// <summary>An ISO 4217 currency with its minor-unit exponent (USD 2, JPY 0, BHD 3).</summary>
/// <remarks>Only active ISO 4217 codes are accepted, upper case exactly: the API contract says so and a
/// lower-case or unknown code is the caller's mistake, not something to guess at.</remarks>
public sealed record Currency
{
    // Active ISO 4217 codes and their minor-unit exponents (ISO 4217 amendment list, 2025).
    private const string Table =
        "AED2 AFN2 ALL2 AMD2 AOA2 ARS2 AUD2 AWG2 AZN2 BAM2 BBD2 BDT2 BHD3 BIF0 BMD2 BND2 BOB2 BRL2 BSD2 BTN2 " +
        "BWP2 BYN2 BZD2 CAD2 CDF2 CHF2 CLF4 CLP0 CNY2 COP2 CRC2 CUP2 CVE2 CZK2 DJF0 DKK2 DOP2 DZD2 EGP2 ERN2 " +
        "ETB2 EUR2 FJD2 FKP2 GBP2 GEL2 GHS2 GIP2 GMD2 GNF0 GTQ2 GYD2 HKD2 HNL2 HTG2 HUF2 IDR2 ILS2 INR2 IQD3 " +
        "IRR2 ISK0 JMD2 JOD3 JPY0 KES2 KGS2 KHR2 KMF0 KPW2 KRW0 KWD3 KYD2 KZT2 LAK2 LBP2 LKR2 LRD2 LSL2 LYD3 " +
        "MAD2 MDL2 MGA2 MKD2 MMK2 MNT2 MOP2 MRU2 MUR2 MVR2 MWK2 MXN2 MYR2 MZN2 NAD2 NGN2 NIO2 NOK2 NPR2 NZD2 " +
        "OMR3 PAB2 PEN2 PGK2 PHP2 PKR2 PLN2 PYG0 QAR2 RON2 RSD2 RUB2 RWF0 SAR2 SBD2 SCR2 SDG2 SEK2 SGD2 SHP2 " +
        "SLE2 SOS2 SRD2 SSP2 STN2 SVC2 SYP2 SZL2 THB2 TJS2 TMT2 TND3 TOP2 TRY2 TTD2 TWD2 TZS2 UAH2 UGX0 USD2 " +
        "UYU2 UYW4 UZS2 VED2 VES2 VND0 VUV0 WST2 XAF0 XCD2 XCG2 XOF0 XPF0 YER2 ZAR2 ZMW2 ZWG2";

    private static readonly FrozenDictionary<string, Currency> Known = Table
        .Split(' ', StringSplitOptions.RemoveEmptyEntries)
        .Select(entry => new Currency(entry[..3], entry[3] - '0'))
        .ToFrozenDictionary(currency => currency.Code, StringComparer.Ordinal);

    public static readonly Currency Usd = FromCode("USD");
    public static readonly Currency Eur = FromCode("EUR");
    public static readonly Currency Jpy = FromCode("JPY");

    private Currency(string code, int minorUnitExponent)
    {
        Code = code;
        MinorUnitExponent = minorUnitExponent;
    }

    /// <summary>Three upper-case letters, e.g. "EUR".</summary>
    public string Code { get; }

    /// <summary>Digits after the decimal point: 2 for EUR, 0 for JPY, 3 for BHD.</summary>
    public int MinorUnitExponent { get; }

    public static IReadOnlyCollection<Currency> All => Known.Values;

    public static bool TryFromCode(string? code, [NotNullWhen(true)] out Currency? currency)
    {
        currency = null;
        return code is not null && Known.TryGetValue(code, out currency);
    }

    /// <exception cref="ArgumentException">The code is not an active ISO 4217 code in upper case.</exception>
    public static Currency FromCode(string code) =>
        TryFromCode(code, out var currency)
            ? currency
            : throw new ArgumentException($"'{code}' is not an active ISO 4217 currency code (upper case).", nameof(code));

    /// <summary>Formats a minor-unit amount for people, e.g. 1250 USD → "12.50 USD". Never parse this back.</summary>
    public string Format(long amountMinor)
    {
        if (MinorUnitExponent == 0)
        {
            return $"{amountMinor} {Code}";
        }

        var sign = amountMinor < 0 ? "-" : string.Empty;
        var magnitude = amountMinor == long.MinValue ? (ulong)long.MaxValue + 1 : (ulong)Math.Abs(amountMinor);
        var divisor = (ulong)Math.Pow(10, MinorUnitExponent);
        var fraction = (magnitude % divisor).ToString(System.Globalization.CultureInfo.InvariantCulture)
            .PadLeft(MinorUnitExponent, '0');
        return $"{sign}{magnitude / divisor}.{fraction} {Code}";
    }

    public override string ToString() => Code;

    public bool Equals(Currency? other) => other is not null && string.Equals(Code, other.Code, StringComparison.Ordinal);

    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(Code);
}

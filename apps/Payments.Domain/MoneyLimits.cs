namespace Payments.Domain;

/// <summary>One currency's money limits, in minor units of that currency. A null field (in an override) takes the default's.</summary>
public sealed class CurrencyLimits
{
    /// <summary>The largest single deposit.</summary>
    public long? MaxDepositMinor { get; set; }

    /// <summary>The largest single payment.</summary>
    public long? MaxPaymentMinor { get; set; }

    /// <summary>The largest overdraft limit the operator may give an account (merchants may give none).</summary>
    public long? MaxOverdraftMinor { get; set; }

    /// <summary>The most one merchant may deposit in a UTC day (<see cref="DepositVolume"/>).</summary>
    public long? MaxDepositVolumePerDayMinor { get; set; }
}

/// <summary>The resolved limits of one currency.</summary>
public sealed record MoneyLimit(Currency Currency, long MaxDepositMinor, long MaxPaymentMinor, long MaxOverdraftMinor, long MaxDepositVolumePerDayMinor);

/// <summary>Per-currency maximums for a deposit, a payment and an overdraft limit (configuration section
/// <c>Payments:MoneyLimits</c>: <c>Default</c>, and <c>Currencies:{CODE}</c> overrides), checked once at start-up.
/// The API applies them all; the ledger applies the overdraft maximum too, so that no caller of it sets more.</summary>
/// <remarks>
/// Why these bound more than a single request. The ledger takes money in only by deposits from the currency's
/// external funding account, which nothing ever pays back, and it holds that account within ±(2^63 − 1)/2 ≈ 4.6·10^18
/// minor units (Payments.Ledger.Core's <c>LedgerLimits</c>: 16 shards of ±(2^63 − 1)/32 each), refusing a deposit
/// beyond it (balance-limit-exceeded) rather than overflow. With the default maximum deposit of 10^10, filling it
/// takes at least 4.6·10^8 maximal deposits: over ten days of one API key at its full default rate (500 requests/s),
/// and as many deposits of real money. Before these limits a deposit could be 10^15, so 147,000 deposits — minutes —
/// overflowed a shard and broke deposits in that currency for every merchant. Raise a maximum only with that
/// arithmetic in mind (docs/api.md, "Money limits").
/// </remarks>
public sealed class MoneyLimits
{
    public const string Section = "Payments:MoneyLimits";

    /// <summary>The largest amount any request may name; every maximum is at most this.</summary>
    public const long CeilingMinor = 1_000_000_000_000_000;

    public const long DefaultMaxDepositMinor = 10_000_000_000;
    public const long DefaultMaxPaymentMinor = 10_000_000_000;
    public const long DefaultMaxOverdraftMinor = 1_000_000_000;

    /// <summary>A hundred maximal deposits a day per merchant and currency: at that pace a currency's external funding
    /// bound (≈ 4.6·10^18) takes 4.6 million merchant-days — over 12 years of 1,000 merchants each depositing the most
    /// it may every day.</summary>
    public const long DefaultMaxDepositVolumePerDayMinor = 1_000_000_000_000;

    /// <summary>Largest daily deposit volume that may be configured.</summary>
    public const long VolumeCeilingMinor = 1_000_000_000_000_000_000;

    public CurrencyLimits Default { get; set; } = new();

    /// <summary>Overrides by ISO 4217 code (upper case).</summary>
    public Dictionary<string, CurrencyLimits> Currencies { get; set; } = new(StringComparer.Ordinal);

    /// <summary>The limits of <paramref name="currency"/>: its override, field by field, else the default.</summary>
    public MoneyLimit For(Currency currency)
    {
        ArgumentNullException.ThrowIfNull(currency);
        var own = Currencies.GetValueOrDefault(currency.Code);
        return new MoneyLimit(
            currency,
            own?.MaxDepositMinor ?? Default.MaxDepositMinor ?? DefaultMaxDepositMinor,
            own?.MaxPaymentMinor ?? Default.MaxPaymentMinor ?? DefaultMaxPaymentMinor,
            own?.MaxOverdraftMinor ?? Default.MaxOverdraftMinor ?? DefaultMaxOverdraftMinor,
            own?.MaxDepositVolumePerDayMinor ?? Default.MaxDepositVolumePerDayMinor ?? DefaultMaxDepositVolumePerDayMinor);
    }

    /// <summary>This, or every mistake at once with the setting's full name.</summary>
    /// <exception cref="InvalidOperationException">A currency is unknown or a maximum is out of range.</exception>
    public MoneyLimits Validate()
    {
        var problems = new List<string>();
        Check(Default, Section + ":Default", problems);
        foreach (var (code, limits) in Currencies)
        {
            var name = $"{Section}:Currencies:{code}";
            if (!Currency.TryFromCode(code, out _))
            {
                problems.Add($"{name}: '{code}' is not an active ISO 4217 currency code in upper case.");
            }

            Check(limits ?? new CurrencyLimits(), name, problems);
        }

        return problems.Count == 0
            ? this
            : throw new InvalidOperationException("Invalid money limits: " + string.Join(" ", problems));
    }

    private static void Check(CurrencyLimits limits, string name, List<string> problems)
    {
        Range(limits.MaxDepositMinor, 1, name + ":MaxDepositMinor", problems);
        Range(limits.MaxPaymentMinor, 1, name + ":MaxPaymentMinor", problems);
        Range(limits.MaxOverdraftMinor, 0, name + ":MaxOverdraftMinor", problems);
        Range(limits.MaxDepositVolumePerDayMinor, 1, name + ":MaxDepositVolumePerDayMinor", problems, VolumeCeilingMinor);
    }

    private static void Range(long? value, long least, string name, List<string> problems, long most = CeilingMinor)
    {
        if (value is { } set && (set < least || set > most))
        {
            problems.Add($"{name} is {set}; it must be from {least} to {most} minor units.");
        }
    }
}

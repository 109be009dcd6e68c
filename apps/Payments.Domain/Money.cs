namespace Payments.Domain;

/// <summary>An exact amount: integer minor units of one currency. Never a float, never a decimal.</summary>
/// <remarks>Arithmetic is overflow-checked and refuses to mix currencies: both are programmer errors,
/// so they throw rather than return a value that would silently lose or create money.</remarks>
public sealed record Money
{
    public Money(long amountMinor, Currency currency)
    {
        ArgumentNullException.ThrowIfNull(currency);
        AmountMinor = amountMinor;
        Currency = currency;
    }

    public long AmountMinor { get; }

    public Currency Currency { get; }

    public static Money Zero(Currency currency) => new(0, currency);

    public bool IsPositive => AmountMinor > 0;

    public bool IsNegative => AmountMinor < 0;

    /// <exception cref="InvalidOperationException">The currencies differ.</exception>
    /// <exception cref="OverflowException">The sum does not fit in 64 bits.</exception>
    public Money Add(Money other)
    {
        EnsureSameCurrency(other);
        return new Money(checked(AmountMinor + other.AmountMinor), Currency);
    }

    /// <exception cref="InvalidOperationException">The currencies differ.</exception>
    /// <exception cref="OverflowException">The difference does not fit in 64 bits.</exception>
    public Money Subtract(Money other)
    {
        EnsureSameCurrency(other);
        return new Money(checked(AmountMinor - other.AmountMinor), Currency);
    }

    public Money Negate() => new(checked(-AmountMinor), Currency);

    public static Money operator +(Money left, Money right) => left.Add(right);

    public static Money operator -(Money left, Money right) => left.Subtract(right);

    public static Money operator -(Money value) => value.Negate();

    public override string ToString() => Currency.Format(AmountMinor);

    private void EnsureSameCurrency(Money other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (!Currency.Equals(other.Currency))
        {
            throw new InvalidOperationException($"Cannot combine {Currency} with {other.Currency}.");
        }
    }
}

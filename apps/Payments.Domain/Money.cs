namespace Payments.Domain;

/// <summary>An exact amount: integer minor units of one currency. Never a float, never a decimal.</summary>
/// <remarks>No arithmetic here on purpose: balances change only through the ledger's postings
/// (<c>Payments.Ledger.Core.Rules.Postings</c>), which refuse an overflow instead of wrapping.</remarks>
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

    public override string ToString() => Currency.Format(AmountMinor);
}

using Payments.Ledger.Contracts;
using Payments.Ledger.Core.Storage;

namespace Payments.Ledger.Core.Rules;

/// <summary>The ledger's own bounds on what a record may hold, written once: no posting may take any amount of any
/// record outside the 64-bit range, and no system account shard beyond <see cref="SystemShardMaxMagnitudeMinor"/>.
/// A posting that would is refused (a value, never an exception), and the refusal leaves every record as it was.</summary>
/// <remarks>
/// Why the system shards have a tighter bound than 64 bits. A system account (external funding, in-transit) is
/// <see cref="LedgerKeys.SystemAccountShards"/> (16) records summed on read, and is reported as one
/// <see cref="Account"/> whose fields, and whose <see cref="Account.AvailableMinor"/> (balance less pending debits),
/// are 64-bit. With every shard's balance, pending debits and pending credits within ±S, S = (2^63 − 1) / 32
/// = 288,230,376,151,711,743:
/// <list type="bullet">
/// <item>each sum over 16 shards is within ±16·S = ±(2^63 − 1)/2, so it fits in a long;</item>
/// <item>the total's available amount (balance − pending debits) is within ±32·S ≤ 2^63 − 1, so it fits too;</item>
/// <item>the sum over every account of a currency, which the invariant checks compute, is summed in Int128 anyway.</item>
/// </list>
/// What this costs: external funding is only ever debited (a deposit takes money into the platform; nothing gives it
/// back), so its total is minus every deposit ever made in the currency, and the ledger can take deposits worth at
/// most 16·S ≈ 4.6·10^18 minor units per currency in its lifetime (fewer when one shard fills before the others).
/// The API keeps that far away with its per-currency deposit maximum (Payments:MoneyLimits; docs/api.md gives the
/// arithmetic); the ledger's refusal is the last line, so that even an unforeseen sequence can never wrap or throw.
/// </remarks>
public static class LedgerLimits
{
    /// <summary>The largest magnitude a system account shard's balance or pending amounts may reach.</summary>
    public const long SystemShardMaxMagnitudeMinor = long.MaxValue / (2 * LedgerKeys.SystemAccountShards);

    /// <summary>The largest magnitude a whole system account's fields reach (the sum of its shards).</summary>
    public const long SystemAccountMaxMagnitudeMinor = SystemShardMaxMagnitudeMinor * LedgerKeys.SystemAccountShards;

    /// <summary>Why <paramref name="after"/>, a record as a posting would leave it, is out of bounds, or null.</summary>
    internal static LedgerError? Exceeded(AccountRecord after) =>
        after.Unlimited && (Outside(after.BalanceMinor) || Outside(after.PendingDebitMinor) || Outside(after.PendingCreditMinor))
            ? new LedgerError(LedgerError.BalanceLimitExceeded,
                $"The transfer would take a shard of system account {after.Id} beyond ±{SystemShardMaxMagnitudeMinor} minor units. Nothing was applied.")
            : null;

    /// <summary>A sum over records (a system account's shards, or a currency's accounts) as a long, or a clear fault:
    /// with the bounds above it always fits, so one that does not is data written past them (a programmer error).</summary>
    /// <exception cref="InvalidDataException">The sum does not fit in 64 bits.</exception>
    internal static long ToInt64(Int128 sum, string what) =>
        sum >= long.MinValue && sum <= long.MaxValue
            ? (long)sum
            : throw new InvalidDataException($"{what} sums to {sum}, beyond 64 bits: records were written past the ledger's limits.");

    /// <summary>The sum of <paramref name="values"/> in 128 bits (no sum of 64-bit values can overflow it in practice:
    /// 2^64 of them would be needed).</summary>
    internal static Int128 Sum<T>(IEnumerable<T> items, Func<T, long> value)
    {
        Int128 sum = 0;
        foreach (var item in items)
        {
            sum += value(item);
        }

        return sum;
    }

    private static bool Outside(long amountMinor) => amountMinor is > SystemShardMaxMagnitudeMinor or < -SystemShardMaxMagnitudeMinor;
}

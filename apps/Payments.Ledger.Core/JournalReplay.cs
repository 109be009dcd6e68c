using Payments.Domain;
using Payments.Ledger.Core.Model;

namespace Payments.Ledger.Core;

/// <summary>Balances rebuilt from journal entries alone: the check that the journal is complete, and (for the
/// standby region) the way a replica is built.</summary>
public static class JournalReplay
{
    public sealed record Balance(long BalanceMinor, long PendingDebitMinor, long PendingCreditMinor);

    public static IReadOnlyDictionary<AccountId, Balance> Replay(IEnumerable<JournalEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var balances = new Dictionary<AccountId, Balance>();
        var previous = long.MinValue;
        foreach (var entry in entries)
        {
            if (entry.Sequence <= previous)
            {
                throw new InvalidOperationException($"Journal out of order: {entry.Sequence} after {previous}.");
            }

            previous = entry.Sequence;
            var amount = entry.Amount.AmountMinor;
            var (debitBalance, debitPending, creditBalance, creditPending) = entry.Kind switch
            {
                TransferKind.Single => (-amount, 0L, amount, 0L),
                TransferKind.Pending => (0L, amount, 0L, amount),
                TransferKind.PostPending => (-amount, -amount, amount, -amount),
                _ => (0L, -amount, 0L, -amount), // void or expiry: the hold is released, nothing moves
            };
            Apply(balances, entry.DebitAccountId, debitBalance, debitPending, 0);
            Apply(balances, entry.CreditAccountId, creditBalance, 0, creditPending);
        }

        return balances;
    }

    private static void Apply(Dictionary<AccountId, Balance> balances, AccountId id, long balance, long pendingDebit, long pendingCredit)
    {
        var current = balances.GetValueOrDefault(id, new Balance(0, 0, 0));
        balances[id] = new Balance(
            checked(current.BalanceMinor + balance),
            checked(current.PendingDebitMinor + pendingDebit),
            checked(current.PendingCreditMinor + pendingCredit));
    }
}

using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core.Rules;

namespace Payments.Ledger.Core;

/// <summary>Balances rebuilt from journal entries alone: the check that the journal is complete.</summary>
public static class JournalReplay
{
    public static IReadOnlyDictionary<AccountId, Balances> Replay(IEnumerable<JournalEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var balances = new Dictionary<AccountId, Balances>();
        var previous = long.MinValue;
        foreach (var entry in entries)
        {
            if (entry.Sequence <= previous)
            {
                throw new InvalidOperationException($"Journal out of order: {entry.Sequence} after {previous}.");
            }

            previous = entry.Sequence;
            var (debit, credit) = Postings.Of(entry.Kind, entry.Amount.AmountMinor);
            balances[entry.DebitAccountId] = balances.GetValueOrDefault(entry.DebitAccountId).Plus(debit);
            balances[entry.CreditAccountId] = balances.GetValueOrDefault(entry.CreditAccountId).Plus(credit);
        }

        return balances;
    }
}

using System.Diagnostics;
using Payments.Ledger.Core.Storage;

namespace Payments.Ledger.Core.Rules;

/// <summary>The ledger's invariants over one commit's own writes (ARCHITECTURE §2): per currency the balance changes
/// sum to zero and the pending debits placed or released equal the pending credits, and no account the commit
/// touched ends up overdrawn by it. Asserted after every commit in Debug builds; the whole-ledger checks are
/// <see cref="Invariants.LedgerInvariants"/>.</summary>
internal static class CommitCheck
{
    /// <summary>What the commit broke, empty when nothing. <paramref name="changes"/>: each written account record as
    /// read (null: created by this commit) and as written.</summary>
    public static IReadOnlyList<string> Violations(IEnumerable<(AccountRecord? Before, AccountRecord After)> changes)
    {
        ArgumentNullException.ThrowIfNull(changes);
        var violations = new List<string>();
        var sums = new Dictionary<string, Balances>(StringComparer.Ordinal);
        foreach (var (before, after) in changes)
        {
            var was = before?.Balances ?? Balances.Zero;
            var delta = new Balances(
                after.BalanceMinor - was.BalanceMinor, after.PendingDebitMinor - was.PendingDebitMinor, after.PendingCreditMinor - was.PendingCreditMinor);
            sums[after.Currency] = sums.GetValueOrDefault(after.Currency).Plus(delta);
            var availableBefore = was.BalanceMinor - was.PendingDebitMinor;
            if (after.IsOverdrawn && after.BalanceMinor - after.PendingDebitMinor < availableBefore)
            {
                violations.Add($"{after.Id} ends overdrawn: available {after.BalanceMinor - after.PendingDebitMinor}, limit {after.OverdraftLimitMinor}.");
            }

            if (after.PendingDebitMinor < 0 || after.PendingCreditMinor < 0)
            {
                violations.Add($"{after.Id} ends with negative pending amounts.");
            }
        }

        foreach (var (currency, sum) in sums)
        {
            if (sum.BalanceMinor != 0 || sum.PendingDebitMinor != sum.PendingCreditMinor)
            {
                violations.Add($"{currency}: the commit changes balances by {sum.BalanceMinor} and pending debits/credits by {sum.PendingDebitMinor}/{sum.PendingCreditMinor}.");
            }
        }

        return violations;
    }

    /// <summary>Debug builds: stops at a commit that broke an invariant (a programmer error, never an input error).</summary>
    [Conditional("DEBUG")]
    public static void AssertHolds(WorkingSet set)
    {
        var changes = set.Writes
            .Where(write => write.Value is AccountRecord)
            .Select(write => (set.Read(write.Key) is { Exists: true } read ? LedgerJson.DecodeAccount(read.Value!) : null, (AccountRecord)write.Value!));
        var violations = Violations(changes);
        Debug.Assert(violations.Count == 0, "A ledger commit broke an invariant: " + string.Join(" ", violations));
    }
}

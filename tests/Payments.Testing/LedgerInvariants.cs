using Payments.Domain;
using Payments.Ledger.Core;
using Payments.Ledger.Core.Model;
using Xunit;

namespace Payments.Testing;

/// <summary>The ledger's invariants, checked from what etcd holds (ARCHITECTURE §2).</summary>
public static class LedgerInvariants
{
    public const int MaxJournalEntries = 2_000_000;

    public sealed record Report(IReadOnlyList<Account> Accounts, IReadOnlyList<JournalEntry> Journal);

    public static async Task<Report> AssertAllHoldAsync(EtcdLedger ledger, CancellationToken cancellationToken)
    {
        var reader = new JournalReader(ledger);
        var journal = await reader.ReadAllAsync(MaxJournalEntries, cancellationToken);
        var accounts = await reader.SnapshotAccountsAsync(cancellationToken);

        foreach (var currency in accounts.GroupBy(account => account.Currency))
        {
            // Conservation: double entry means every currency sums to zero, system accounts included.
            Assert.Equal(0, currency.Sum(account => account.BalanceMinor));
            Assert.Equal(currency.Sum(account => account.PendingDebitMinor), currency.Sum(account => account.PendingCreditMinor));
        }

        foreach (var account in accounts.Where(account => !account.IsSystem))
        {
            Assert.True(account.AvailableMinor >= -account.OverdraftLimitMinor,
                $"{account.Id} is overdrawn: available {account.AvailableMinor}, limit {account.OverdraftLimitMinor}");
            Assert.True(account.PendingDebitMinor >= 0 && account.PendingCreditMinor >= 0, $"{account.Id} has negative pending amounts");
        }

        // Exactly once: a transfer id appears at most once in the journal.
        var duplicates = journal.GroupBy(entry => entry.TransferId).Where(group => group.Count() > 1).Select(group => group.Key).ToArray();
        Assert.Empty(duplicates);

        // The journal is complete: replaying it gives every stored balance.
        var replayed = JournalReplay.Replay(journal);
        foreach (var account in accounts)
        {
            var expected = replayed.GetValueOrDefault(account.Id, new JournalReplay.Balance(0, 0, 0));
            Assert.Equal(expected, new JournalReplay.Balance(account.BalanceMinor, account.PendingDebitMinor, account.PendingCreditMinor));
        }

        Assert.All(replayed.Keys, id => Assert.Contains(accounts, account => account.Id == id));
        return new Report(accounts, journal);
    }

    public static async Task<long> BalanceAsync(EtcdLedger ledger, AccountId id) =>
        (await ledger.GetAccountAsync(id, CancellationToken.None))!.BalanceMinor;
}

using Payments.Ledger.Core;
using Payments.Ledger.Core.Model;
using Spectre.Console;

namespace Payments.Local;

/// <summary>The invariant checks of ARCHITECTURE §2 over what etcd holds, printed as a table.</summary>
public sealed record LedgerReport(IReadOnlyList<Account> Accounts, IReadOnlyList<JournalEntry> Journal)
{
    public const int MaxJournalEntries = 5_000_000;

    public static async Task<LedgerReport> BuildAsync(EtcdLedger ledger, CancellationToken cancellationToken)
    {
        var reader = new JournalReader(ledger);
        var journal = await reader.ReadAllAsync(MaxJournalEntries, cancellationToken);
        var accounts = await reader.SnapshotAccountsAsync(cancellationToken);
        return new LedgerReport(accounts, journal);
    }

    /// <summary>Prints every check; true when all hold.</summary>
    public bool Print()
    {
        var checks = Checks();
        var table = new Table().Title("Ledger invariants").AddColumns("check", "result", "detail");
        foreach (var (check, holds, detail) in checks)
        {
            table.AddRow(check, holds ? "[green]holds[/]" : "[red]BROKEN[/]", Markup.Escape(detail));
        }

        AnsiConsole.Write(table);
        return checks.All(check => check.Holds);
    }

    /// <summary>Conservation per currency, no overdraft, exactly once, and the journal replaying to the balances.</summary>
    public IReadOnlyList<(string Check, bool Holds, string Detail)> Checks()
    {
        var checks = new List<(string Check, bool Holds, string Detail)>();
        foreach (var currency in Accounts.GroupBy(account => account.Currency))
        {
            var sum = currency.Sum(account => account.BalanceMinor);
            checks.Add(($"conservation {currency.Key.Code}", sum == 0, $"sum of {currency.Count()} balances = {sum}"));
        }

        var overdrawn = Accounts.Where(account => !account.IsSystem && account.AvailableMinor < -account.OverdraftLimitMinor).ToArray();
        checks.Add(("no overdraft", overdrawn.Length == 0, $"{overdrawn.Length} accounts below their limit"));
        var duplicates = Journal.GroupBy(entry => entry.TransferId).Count(group => group.Count() > 1);
        checks.Add(("exactly once", duplicates == 0, $"{Journal.Count:N0} journal entries, {duplicates} repeated transfer ids"));
        var replayed = JournalReplay.Replay(Journal);
        var mismatches = Accounts.Count(account =>
            replayed.GetValueOrDefault(account.Id, new JournalReplay.Balance(0, 0, 0))
            != new JournalReplay.Balance(account.BalanceMinor, account.PendingDebitMinor, account.PendingCreditMinor));
        checks.Add(("journal replays to balances", mismatches == 0, $"{mismatches} of {Accounts.Count} accounts differ"));
        return checks;
    }
}

using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core.Rules;

namespace Payments.Ledger.Core.Invariants;

/// <summary>Every account (system accounts summed over their shards), the journal still in etcd, and what the
/// archived part of the journal added up to per account (ADR 0004; empty until something was archived).</summary>
public sealed record LedgerSnapshot(IReadOnlyList<Account> Accounts, IReadOnlyList<JournalEntry> Journal)
{
    public IReadOnlyDictionary<AccountId, Balances> Archived { get; init; } = new Dictionary<AccountId, Balances>();

    public static async Task<LedgerSnapshot> ReadAsync(EtcdLedger ledger, int maxJournalEntries, CancellationToken cancellationToken)
    {
        var reader = new JournalReader(ledger);
        var journal = await reader.ReadAllAsync(maxJournalEntries, cancellationToken);
        var archived = await reader.ArchivedSumsAsync(cancellationToken);
        var accounts = await reader.SnapshotAccountsAsync(cancellationToken);
        return new LedgerSnapshot(accounts, journal) { Archived = archived };
    }
}

/// <summary>One invariant over a snapshot: its name, whether it holds, and what was found.</summary>
public sealed record InvariantCheck(string Name, bool Holds, string Detail);

/// <summary>The ledger's invariants (ARCHITECTURE §2), written once and used by the tests, the run command's report,
/// the DR drill and the benchmarks: conservation per currency, no overdraft, exactly once, and the journal replaying
/// to every stored balance.</summary>
public static class LedgerInvariants
{
    /// <summary>Most journal entries a check reads.</summary>
    public const int MaxJournalEntries = 5_000_000;

    /// <summary>Ids named in a check's detail at most.</summary>
    private const int MaxNamed = 5;

    public static async Task<(LedgerSnapshot Snapshot, IReadOnlyList<InvariantCheck> Checks)> CheckAsync(
        EtcdLedger ledger, CancellationToken cancellationToken)
    {
        var snapshot = await LedgerSnapshot.ReadAsync(ledger, MaxJournalEntries, cancellationToken);
        return (snapshot, Check(snapshot));
    }

    public static IReadOnlyList<InvariantCheck> Check(LedgerSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        var checks = new List<InvariantCheck>();
        foreach (var currency in snapshot.Accounts.GroupBy(account => account.Currency))
        {
            // Double entry: every currency sums to zero, system accounts included; every hold placed on one account
            // is announced to another. Summed in 128 bits: many customer balances near 64 bits need not fit in 64.
            var sum = LedgerLimits.Sum(currency, account => account.BalanceMinor);
            var pendingDebits = LedgerLimits.Sum(currency, account => account.PendingDebitMinor);
            var pendingCredits = LedgerLimits.Sum(currency, account => account.PendingCreditMinor);
            checks.Add(new($"conservation {currency.Key.Code}", sum == 0 && pendingDebits == pendingCredits,
                $"sum of {currency.Count()} balances = {sum}; pending debits {pendingDebits}, pending credits {pendingCredits}"));
        }

        var customers = snapshot.Accounts.Where(account => !account.IsSystem).ToArray();
        checks.Add(Named("no overdraft", customers.Where(account => account.AvailableMinor < -account.OverdraftLimitMinor).Select(account => account.Id.Value),
            "accounts below their limit"));
        checks.Add(Named("no negative holds", customers.Where(account => account.PendingDebitMinor < 0 || account.PendingCreditMinor < 0).Select(account => account.Id.Value),
            "accounts with negative pending amounts"));
        checks.Add(Named("exactly once", snapshot.Journal.GroupBy(entry => entry.TransferId).Where(group => group.Count() > 1).Select(group => group.Key.Value),
            $"repeated transfer ids in {snapshot.Journal.Count:N0} journal entries"));
        checks.Add(ReplayCheck(snapshot));
        return checks;
    }

    /// <summary>The journal is complete: its archived sums plus replaying what etcd still holds give every stored
    /// balance, and name no account that is not stored.</summary>
    private static InvariantCheck ReplayCheck(LedgerSnapshot snapshot)
    {
        var replayed = new Dictionary<AccountId, Balances>(snapshot.Archived);
        foreach (var (id, balances) in JournalReplay.Replay(snapshot.Journal))
        {
            replayed[id] = replayed.GetValueOrDefault(id).Plus(balances);
        }

        var stored = snapshot.Accounts.ToDictionary(account => account.Id);
        var differing = snapshot.Accounts
            .Where(account => replayed.GetValueOrDefault(account.Id) != new Balances(account.BalanceMinor, account.PendingDebitMinor, account.PendingCreditMinor))
            .Select(account => account.Id.Value)
            .Concat(replayed.Keys.Where(id => !stored.ContainsKey(id)).Select(id => id.Value + " (not stored)"));
        return Named("journal replays to balances", differing, $"of {snapshot.Accounts.Count} accounts differ from the replayed journal");
    }

    private static InvariantCheck Named(string name, IEnumerable<string> offenders, string what)
    {
        var all = offenders.ToArray();
        var named = all.Length == 0 ? string.Empty : $": {string.Join(", ", all.Take(MaxNamed))}{(all.Length > MaxNamed ? ", …" : string.Empty)}";
        return new InvariantCheck(name, all.Length == 0, $"{all.Length} {what}{named}");
    }
}

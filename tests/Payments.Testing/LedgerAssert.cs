using Payments.Domain;
using Payments.Ledger.Core;
using Payments.Ledger.Core.Invariants;
using Xunit;

namespace Payments.Testing;

/// <summary>The ledger's invariants (<see cref="LedgerInvariants"/>, the library's one implementation), asserted.</summary>
public static class LedgerAssert
{
    /// <summary>Reads the ledger and fails with every broken invariant's detail; returns what it read.</summary>
    public static async Task<LedgerSnapshot> InvariantsHoldAsync(EtcdLedger ledger, CancellationToken cancellationToken)
    {
        var (snapshot, checks) = await LedgerInvariants.CheckAsync(ledger, cancellationToken);
        var broken = checks.Where(check => !check.Holds).Select(check => $"{check.Name}: {check.Detail}").ToArray();
        Assert.True(broken.Length == 0, "Ledger invariants broken: " + string.Join("; ", broken));
        Assert.Contains(checks, check => check.Name == "journal replays to balances"); // the checks ran, not just none failed
        return snapshot;
    }

    public static async Task<long> BalanceAsync(EtcdLedger ledger, AccountId id) =>
        (await ledger.GetAccountAsync(id, CancellationToken.None))!.BalanceMinor;
}

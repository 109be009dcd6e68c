using Payments.Ledger.Core;
using Payments.Ledger.Core.Invariants;
using Payments.Orchestrator.Client.Checks;
using Payments.Orchestrator.Client.Records;

namespace Payments.Local.Hosting;

/// <summary>What the demo, the system tests and the fault campaign check after a run, from what etcd holds: the
/// ledger's invariants (<see cref="LedgerInvariants"/>) and every payment's status against the journal
/// (<see cref="PaymentStatusCheck"/>).</summary>
public static class SystemChecks
{
    /// <summary>Payment records read at most.</summary>
    public const int MaxPayments = 1_000_000;

    public const string StatusCheckName = "status tells the truth";

    /// <summary>The ledger's invariants and the status check, as checks; and the number of status mismatches.</summary>
    public static async Task<(IReadOnlyList<InvariantCheck> Checks, int StatusMismatches)> RunAsync(LocalSystem system, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(system);
        var (snapshot, checks) = await LedgerInvariants.CheckAsync(system.Ledger, cancellationToken);
        var records = await new PaymentRecordStore(system.Etcd, LocalSystem.Layout.PaymentsPrefix).ReadAllAsync(MaxPayments, cancellationToken);
        var (checkedCount, mismatches, listed) = PaymentStatusCheck.Check(records, snapshot.Journal);
        var named = string.Join(", ", listed.Take(5).Select(mismatch => $"{mismatch.PaymentId} {mismatch.Status}: {mismatch.Problem}"));
        return ([.. checks, new InvariantCheck(StatusCheckName, mismatches == 0,
            $"{mismatches} of {checkedCount} terminal payments disagree with the journal{(named.Length > 0 ? ": " + named : string.Empty)}")], mismatches);
    }
}

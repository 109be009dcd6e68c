using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Client.Records;

namespace Payments.Orchestrator.Client.Checks;

/// <summary>A payment whose reported status disagrees with the ledger.</summary>
public sealed record StatusMismatch(string PaymentId, string Status, string Problem);

/// <summary>Status tells the truth (ARCHITECTURE §2, invariant 7): every payment's reported status against the ledger's
/// journal. <c>completed</c> ⇔ its settlement (the creditor's credit and the hold's post) is in the journal;
/// <c>failed</c>/<c>compensated</c> ⇔ no settlement and no hold left open. A payment still in flight is not judged.
/// The one checker the tests, the demo and the fault campaign share.</summary>
public static class PaymentStatusCheck
{
    /// <summary>Mismatches named at most (the count is always exact).</summary>
    public const int MaxListed = 100;

    public static (int Checked, int Mismatches, IReadOnlyList<StatusMismatch> Listed) Check(
        IEnumerable<PaymentRecord> payments, IReadOnlyList<JournalEntry> journal)
    {
        ArgumentNullException.ThrowIfNull(payments);
        ArgumentNullException.ThrowIfNull(journal);
        var applied = journal.Select(entry => entry.TransferId).ToHashSet();
        var resolved = journal.Where(entry => entry.PendingId is not null).Select(entry => entry.PendingId!).ToHashSet();
        var listed = new List<StatusMismatch>();
        int checkedCount = 0, mismatches = 0;
        foreach (var payment in payments.Where(payment => payment.IsTerminal))
        {
            checkedCount++;
            if (Problem(payment, applied, resolved) is { } problem)
            {
                mismatches++;
                if (listed.Count < MaxListed)
                {
                    listed.Add(new StatusMismatch(payment.PaymentId, payment.Status, problem));
                }
            }
        }

        return (checkedCount, mismatches, listed);
    }

    private static string? Problem(PaymentRecord payment, IReadOnlySet<TransferId> applied, IReadOnlySet<TransferId> resolved)
    {
        var id = payment.PaymentId;
        var credited = applied.Contains(PaymentTransfers.Credit(id));
        var posted = applied.Contains(PaymentTransfers.Post(id));
        var held = applied.Contains(PaymentTransfers.Hold(id));
        if (credited != posted)
        {
            return "half a settlement in the journal (credit and post are one transaction)";
        }

        return payment.Status switch
        {
            PaymentStatus.Completed when !credited => "reported completed, but its settlement is not in the journal",
            PaymentStatus.Completed => null,
            _ when credited => $"reported {payment.Status}, but its settlement is in the journal: money moved",
            _ when held && !resolved.Contains(PaymentTransfers.Hold(id)) => $"reported {payment.Status}, but its hold is still open",
            _ => null,
        };
    }
}

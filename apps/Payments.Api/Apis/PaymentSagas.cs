using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Client.Records;

namespace Payments.Api.Apis;

/// <summary>How the API sets an accepted payment's saga going.</summary>
internal static class PaymentSagas
{
    /// <summary>The shortest wait for a reviewer a resumed run is given (as the orchestrator's sweeper gives it).</summary>
    private static readonly TimeSpan MinApprovalWait = TimeSpan.FromSeconds(1);

    /// <summary>A payment this request recorded starts its saga. One whose record existed (a retry whose idempotency
    /// record was lost, or stayed in the other region after a failover) is resumed: an earlier run may have got past
    /// the decision, and a fresh one would decide again — check risk and the debtor's funds against a balance the
    /// settlement may already have taken, and record failed a payment whose money moved. The resumed run asks the
    /// ledger first, and waits for a reviewer only for the time left. (A finished one is not started at all: the
    /// caller answers it.)</summary>
    public static Task StartOrResumeAsync(PaymentRecord record, bool recorded, PaymentServices services, CancellationToken cancellationToken)
    {
        var traceParent = System.Diagnostics.Activity.Current?.Id;
        if (recorded)
        {
            return services.Workflows.StartAsync(new PaymentInput(record.Order, services.ApprovalTimeout, traceParent, record.CreatedAt), cancellationToken);
        }

        var left = record.CreatedAt + services.ApprovalTimeout - services.Time.GetUtcNow();
        var wait = left < MinApprovalWait ? MinApprovalWait : left > services.ApprovalTimeout ? services.ApprovalTimeout : left;
        return services.Workflows.ResumeAsync(new PaymentInput(record.Order, wait, traceParent, record.CreatedAt), cancellationToken);
    }
}

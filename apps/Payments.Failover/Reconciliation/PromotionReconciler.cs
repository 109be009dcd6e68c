using Payments.Orchestrator.Client.Gateway;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Client.Records;

namespace Payments.Failover.Reconciliation;

/// <summary>What a region does with the previous region's unfinished work when it starts writing. The rule: every
/// payment record that is not terminal gets its saga resumed here, with the same payment id. The saga's ledger
/// transfers derive from that id, so whatever the lost region already applied (and shipped) replays instead of
/// applying twice, and what it had not reaches the end here: a hold either settles or is voided by the saga's own
/// compensation, and a hold nobody resumes is released by the ledger's expiry. A payment the lost region accepted
/// but never shipped a record of is resumed by its client's retry with the same Idempotency-Key.</summary>
internal sealed class PromotionReconciler(
    PaymentRecordStore records, IPaymentWorkflows? workflows, TimeProvider time, ILogger<PromotionReconciler> logger, IHostApplicationLifetime lifetime)
{
    public const int PageSize = 200;
    public const int MaxPayments = 1_000_000;
    public static readonly TimeSpan MaxDuration = TimeSpan.FromMinutes(10);
    public static readonly TimeSpan ApprovalTimeout = TimeSpan.FromHours(24);

    public ReconciliationReport? Last { get; private set; }

    /// <summary>Starts reconciliation in the background (the lease loop must not wait for it).</summary>
    public Task OnPromotedAsync(long epoch)
    {
        _ = Task.Run(() => RunAsync(epoch, lifetime.ApplicationStopping));
        return Task.CompletedTask;
    }

    public async Task<ReconciliationReport> RunAsync(long epoch, CancellationToken stopping)
    {
        var report = new ReconciliationReport(epoch, time.GetUtcNow());
        if (workflows is null)
        {
            logger.LogWarning("Epoch {Epoch}: no orchestrator configured (Payments:OrchestratorUrl); unfinished payments are resumed only by their clients' retries", epoch);
            return Last = report with { FinishedAt = time.GetUtcNow() };
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        timeout.CancelAfter(MaxDuration);
        string? after = null;
        try
        {
            while (report.Scanned < MaxPayments)
            {
                var page = await records.ListAsync(after, PageSize, timeout.Token);
                if (page.Count == 0)
                {
                    break;
                }

                foreach (var record in page)
                {
                    report = report with { Scanned = report.Scanned + 1 };
                    if (record.IsTerminal)
                    {
                        continue;
                    }

                    try
                    {
                        await workflows.StartAsync(new PaymentInput(record.Order, ApprovalTimeout, TraceParent: null), timeout.Token);
                        report = report with { Resumed = report.Resumed + 1 };
                    }
                    catch (Exception exception) when (exception is HttpRequestException or Grpc.Core.RpcException
                                                      || (exception is OperationCanceledException && !timeout.IsCancellationRequested))
                    {
                        report = report with { Failed = report.Failed + 1 };
                        logger.LogWarning("Epoch {Epoch}: could not resume payment {PaymentId} ({Error})", epoch, record.PaymentId, exception.Message);
                    }
                }

                after = page[^1].PaymentId;
            }
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            logger.LogWarning("Epoch {Epoch}: reconciliation stopped after {Duration} ({Scanned} records scanned)", epoch, MaxDuration, report.Scanned);
        }

        report = report with { FinishedAt = time.GetUtcNow() };
        logger.LogWarning("Epoch {Epoch}: reconciliation scanned {Scanned} payments, resumed {Resumed}, failed to resume {Failed}",
            epoch, report.Scanned, report.Resumed, report.Failed);
        return Last = report;
    }
}

internal sealed record ReconciliationReport(long Epoch, DateTimeOffset StartedAt, long Scanned = 0, long Resumed = 0, long Failed = 0, DateTimeOffset? FinishedAt = null);

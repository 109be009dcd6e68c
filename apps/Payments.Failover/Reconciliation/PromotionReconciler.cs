using Payments.Etcd;
using Payments.Orchestrator.Client.Records;

namespace Payments.Failover.Reconciliation;

/// <summary>What a region does with the previous region's unfinished work when it starts writing. The rule: every
/// payment record that is not terminal gets its saga resumed here, with the same payment id. The saga's ledger
/// transfers derive from that id, so whatever the lost region already applied (and shipped) replays instead of
/// applying twice, and what it had not reaches the end here: a hold either settles or is voided by the saga's own
/// compensation, and a hold nobody resumes is released by the ledger's expiry. A payment the lost region accepted
/// but never shipped a record of is resumed by its client's retry with the same Idempotency-Key.</summary>
/// <remarks>The work itself is the stuck-payment sweeper's (in the orchestrator): paged, resumable from its cursor in
/// etcd after a restart, and retrying each payment it could not resume on its next cycle. This only asks for it — a flag
/// in this region's etcd, set with bounded retries until it is set — so nothing is logged and forgotten.</remarks>
internal sealed class PromotionReconciler(EtcdConnection etcd, EtcdOptions layout, TimeProvider time, ILogger<PromotionReconciler> logger, IHostApplicationLifetime lifetime)
{
    /// <summary>Attempts at a short pause (10 to 20 minutes of an unreachable etcd); after them it goes on at
    /// <see cref="SlowPause"/> for as long as the region holds the epoch (<see cref="StillHolds"/>).</summary>
    public const int MaxAttempts = 120;

    private static readonly TimeSpan AttemptTimeout = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan MaxPause = TimeSpan.FromSeconds(5);

    /// <summary>Between attempts after the first <see cref="MaxAttempts"/>.</summary>
    public static readonly TimeSpan SlowPause = TimeSpan.FromSeconds(30);

    /// <summary>Whether this region still writes with the epoch. Giving up after <see cref="MaxAttempts"/> left the
    /// sweeper out of takeover mode for the whole epoch (nothing asks again until a failover process restarts): a saga
    /// run of the region's earlier epoch that had ended then had its output recorded over the payment's later life.
    /// The request's life is the epoch's, no longer (null: <see cref="MaxAttempts"/> only).</summary>
    public Func<long, bool>? StillHolds { get; init; }

    public ReconciliationReport? Last { get; private set; }

    /// <summary>Asks for the takeover sweep in the background (the lease loop must not wait for it).</summary>
    public Task OnPromotedAsync(long epoch)
    {
        _ = Task.Run(() => RequestAsync(epoch, lifetime.ApplicationStopping));
        return Task.CompletedTask;
    }

    public async Task<ReconciliationReport> RequestAsync(long epoch, CancellationToken stopping)
    {
        var report = new ReconciliationReport(epoch, time.GetUtcNow());
        for (var attempt = 1; (attempt <= MaxAttempts || StillHolds?.Invoke(epoch) == true) && !stopping.IsCancellationRequested; attempt++)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stopping);
            timeout.CancelAfter(AttemptTimeout);
            try
            {
                await SweepRequests.RequestTakeoverSweepAsync(etcd, layout, epoch, timeout.Token);
                logger.LogWarning("Epoch {Epoch}: asked the stuck-payment sweeper to resume every unfinished payment", epoch);
                return Last = report with { Attempts = attempt, RequestedAt = time.GetUtcNow() };
            }
            // Any failure but the process stopping is retried within the same bounds: the loop runs untracked in the
            // background (OnPromotedAsync), so an exception let out of it ended the request without a line (an audit).
            catch (Exception exception) when (!(exception is OperationCanceledException && stopping.IsCancellationRequested))
            {
                if (attempt <= MaxAttempts || attempt % 10 == 0)
                {
                    var level = attempt < MaxAttempts ? LogLevel.Warning : LogLevel.Error;
                    // etcd away is expected (its message says enough); anything else is a defect, logged with its trace.
                    logger.Log(level, exception is Grpc.Core.RpcException or OperationCanceledException ? null : exception,
                        "Epoch {Epoch}: could not ask for the takeover sweep (attempt {Attempt}: {Error}); retrying", epoch, attempt, exception.Message);
                }

                Last = report with { Attempts = attempt };
                if (attempt >= MaxAttempts && StillHolds?.Invoke(epoch) != true)
                {
                    break; // no pause before giving up
                }

                var pause = attempt < 5 ? TimeSpan.FromMilliseconds(200 * attempt) : attempt < MaxAttempts ? MaxPause : SlowPause;
                await Task.Delay(pause, time, stopping).ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }

        logger.LogError("Epoch {Epoch}: the takeover sweep was never requested ({Attempts} attempts); gave up (the region no longer holds the epoch, or the process stops)", epoch, Last?.Attempts ?? 0);
        return Last ?? report;
    }
}

/// <summary>The last takeover's request for a full sweep: when, and after how many attempts (null RequestedAt: not yet).</summary>
internal sealed record ReconciliationReport(long Epoch, DateTimeOffset StartedAt, int Attempts = 0, DateTimeOffset? RequestedAt = null);

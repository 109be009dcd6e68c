using Payments.Etcd;
using Payments.Failover.Core.Archiving;

namespace Payments.Failover.Archiving;

/// <summary>Configuration section <c>Archive</c>: when finished payment records leave etcd for the archive.</summary>
public sealed class ArchiveOptions
{
    public const string Section = "Archive";

    /// <summary>How long a finished payment record stays in etcd (default 8 days, as the journal: ADR 0004).</summary>
    public TimeSpan PaymentRecordsKeepFor { get; set; } = TimeSpan.FromDays(8);

    /// <summary>Pause between passes.</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Bound of one pass (its pages are bounded too).</summary>
    public TimeSpan PassTimeout { get; set; } = TimeSpan.FromMinutes(5);

    public ArchiveOptions Validate()
    {
        // A key's payment id is found from records younger than the idempotency window, under yesterday's to
        // tomorrow's id: a record must stay in etcd well past that window and a day of clock allowance.
        var minimum = IdempotencyStore.Retention * 2;
        if (PaymentRecordsKeepFor < minimum)
        {
            throw new InvalidOperationException($"Archive:PaymentRecordsKeepFor must be at least {minimum.TotalHours:0} h (twice the idempotency window).");
        }

        if (Interval <= TimeSpan.Zero || PassTimeout <= TimeSpan.Zero)
        {
            throw new InvalidOperationException("Archive:Interval and Archive:PassTimeout must be positive.");
        }

        return this;
    }
}

/// <summary>Runs <see cref="PaymentArchiver"/> passes in this region, whatever its role: each region's etcd holds its
/// own copy of the payment records (the standby's from replication), and each keeps only the recent ones.</summary>
internal sealed class ArchivingService(PaymentArchiver archiver, ArchiveOptions options, TimeProvider time, ILogger<ArchivingService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            using var pass = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            pass.CancelAfter(options.PassTimeout);
            try
            {
                // A pass that ran out of pages goes on at once; one that archived all that was due waits.
                if (!(await archiver.PassAsync(pass.Token)).More)
                {
                    await Task.Delay(options.Interval, time, stoppingToken);
                }
            }
            catch (Exception exception) when (!stoppingToken.IsCancellationRequested)
            {
                // etcd or Cosmos DB away: nothing was lost (a record leaves etcd only after the archive has it); later.
                logger.LogWarning("Payment record archiving paused: {Error}", exception.Message);
                await Task.Delay(options.Interval, time, stoppingToken);
            }
        }
    }
}

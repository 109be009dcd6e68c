using System.Diagnostics.Metrics;
using Payments.Telemetry;

namespace Payments.Ledger.Core;

/// <summary>The ledger's instruments (exported by every host that runs a ledger).</summary>
internal static class LedgerMetrics
{
    /// <summary>Ledger transactions that failed their compare because another writer changed a key first (then retried).</summary>
    public static readonly Counter<long> Conflicts = PaymentsTelemetry.Meter.CreateCounter<long>(
        "payments.ledger.conflicts", description: "etcd transactions retried after a failed compare");

    /// <summary>Ledger operations by outcome (applied, replayed, refused with its code, unavailable).</summary>
    public static readonly Counter<long> Operations = PaymentsTelemetry.Meter.CreateCounter<long>(
        "payments.ledger.operations", description: "ledger operations by outcome");

    public static readonly Histogram<double> Duration = PaymentsTelemetry.Meter.CreateHistogram<double>(
        "payments.ledger.duration", unit: "ms", description: "time to apply a transfer or batch");

    /// <summary>Transfers per group commit (one etcd transaction): 1 under light load, more as it grows.</summary>
    public static readonly Histogram<long> GroupSize = PaymentsTelemetry.Meter.CreateHistogram<long>(
        "payments.ledger.group_size", description: "single transfers written in one etcd transaction (group commit)");

    /// <summary>Transfers refused unapplied because the group commit's queue was full (503; the caller retries).</summary>
    public static readonly Counter<long> QueueRefusals = PaymentsTelemetry.Meter.CreateCounter<long>(
        "payments.ledger.queue_refusals", description: "transfers refused unapplied: the group commit queue was full");

    /// <summary>Queued transfers left unwritten: their caller had given up, or they waited past the queue's bound.</summary>
    public static readonly Counter<long> QueueAbandoned = PaymentsTelemetry.Meter.CreateCounter<long>(
        "payments.ledger.queue_abandoned", description: "queued transfers left unwritten: the caller gave up or the wait passed its bound");

    /// <summary>How long past its retention the oldest journal entry still in etcd was at the last read of the age
    /// index in this process (<see cref="Retention.JournalArchiver"/>); 0 when none was, and once that read is older than
    /// <see cref="OverdueStaleAfter"/> (another pod's archiver holds the lock and reports). Normally under a minute; it
    /// grows while archival is stalled — an entry that does not read, a hold that never resolves in a region that does
    /// not write, the shipper's copy not confirmed — and the journal with it, until etcd's quota stops every write.</summary>
    public static readonly ObservableGauge<double> ArchivalOverdue = PaymentsTelemetry.Meter.CreateObservableGauge(
        "payments.ledger.archival_overdue", ObserveOverdue, unit: "s", description: "how long past its retention the oldest journal entry still in etcd is");

    public static readonly TimeSpan OverdueStaleAfter = TimeSpan.FromMinutes(10);

    private static double overdueSeconds;
    private static long overdueReadAt = -1; // Environment.TickCount64 of the read; -1: none yet

    public static void RecordOverdue(TimeSpan overdue)
    {
        Volatile.Write(ref overdueSeconds, Math.Max(0, overdue.TotalSeconds));
        Volatile.Write(ref overdueReadAt, Environment.TickCount64);
    }

    private static double ObserveOverdue() =>
        Volatile.Read(ref overdueReadAt) is >= 0 and var readAt && Environment.TickCount64 - readAt <= (long)OverdueStaleAfter.TotalMilliseconds
            ? Volatile.Read(ref overdueSeconds) : 0;

    /// <summary>Journal entries moved out of etcd after their retention (ADR 0004).</summary>
    public static readonly Counter<long> Archived = PaymentsTelemetry.Meter.CreateCounter<long>(
        "payments.ledger.archived_entries", description: "journal entries archived out of etcd");

    /// <summary>Voids that found no hold and barred its id, so a hold still on its way cannot be placed after them.</summary>
    public static readonly Counter<long> HoldsBarred = PaymentsTelemetry.Meter.CreateCounter<long>(
        "payments.ledger.holds_barred", description: "voids that found no hold and barred its id");

    /// <summary>Replicated entries not applied: they resolved a hold this region had resolved itself (orphans of the
    /// other region, shipped after this one took over). Any is a divergence for the operator to look at.</summary>
    public static readonly Counter<long> ReplicationConflicts = PaymentsTelemetry.Meter.CreateCounter<long>(
        "payments.replication.conflicts", description: "replicated entries refused: they resolved a hold this region resolved");
}

using Microsoft.Extensions.Logging;
using Payments.Cosmos;
using Payments.Orchestrator.Client.Records;
using Payments.Telemetry;

namespace Payments.Failover.Core.Archiving;

/// <summary>Moves finished payment records out of etcd once they are older than <c>keepFor</c>: each is written to the
/// archive in Cosmos DB first (idempotent upsert), then deleted from etcd only if it is still at the revision that was
/// archived. So etcd keeps the payments of the last <c>keepFor</c> (and every unfinished one), and a payment is always
/// in one of the two; the API reads the archive when etcd has no record (ADR 0004).
/// <para>What is due comes from the finished-payments index (<c>~done/{time}/{id}</c>, written with the terminal
/// status), oldest first, so a pass reads what it archives and nothing else: payment ids are hashes, so scanning the
/// records would read every payment of the window to find the few due. Records finished before the index existed are
/// found by a slow scan, one page per pass, with a cursor.</para>
/// <para>Correctness needs no lock: two archivers (both regions, or two replicas) write the same record and the
/// compare on the revision lets one delete succeed. A pass reads at most <see cref="MaxPagesPerPass"/> pages of
/// <see cref="PageSize"/>.</para></summary>
public sealed class PaymentArchiver(PaymentRecordStore records, RecordArchive archive, TimeProvider time, TimeSpan keepFor, ILogger logger)
{
    public const int PageSize = 256;
    public const int MaxPagesPerPass = 64;

    /// <summary>Archive writes in flight at once (each a Cosmos point write).</summary>
    public const int MaxConcurrentWrites = 8;

    private static readonly System.Diagnostics.Metrics.Counter<long> Archived =
        PaymentsTelemetry.Meter.CreateCounter<long>("payments.records.archived", description: "Finished payment records moved from etcd to the archive");

    private string? scanCursor;

    public TimeSpan KeepFor => keepFor;

    /// <summary>One bounded pass; the number of records moved to the archive, and whether due ones may be left (the
    /// pass ran out of pages, so the next should follow at once).</summary>
    public async Task<(int Moved, bool More)> PassAsync(CancellationToken cancellationToken)
    {
        var moved = 0;
        var more = false;
        for (var page = 0; page < MaxPagesPerPass; page++)
        {
            var now = time.GetUtcNow();
            var entries = await records.ListFinishedBeforeAsync(now - keepFor, PageSize, cancellationToken);
            if (entries.Count == 0)
            {
                break;
            }

            var found = await records.GetManyWithRevisionsAsync(entries.Select(entry => entry.PaymentId).ToArray(), cancellationToken);
            var due = found.Values.Where(entry => IsDue(entry.Record, now)).ToArray();
            moved += await MoveAsync(due, now, cancellationToken);
            // Index keys whose record is gone (archived by another archiver) or changed since (its newer key comes later).
            var stale = entries.Where(entry => !found.TryGetValue(entry.PaymentId, out var record)
                || !IsDue(record.Record, now) || records.IndexKeyOf(record.Record) != entry.IndexKey).Select(entry => entry.IndexKey).ToArray();
            await records.DeleteIndexKeysAsync(stale, cancellationToken);
            more = entries.Count == PageSize && page == MaxPagesPerPass - 1;
            if (entries.Count < PageSize)
            {
                break;
            }
        }

        moved += await ScanOnePageAsync(cancellationToken);
        if (moved > 0)
        {
            Archived.Add(moved);
            logger.LogInformation("Archived {Count} finished payment records older than {KeepFor}", moved, keepFor);
        }

        return (moved, more);
    }

    private bool IsDue(PaymentRecord record, DateTimeOffset now) => record.IsTerminal && now - record.UpdatedAt >= keepFor;

    /// <summary>Records finished before the index existed: one page of a scan of every record per pass.</summary>
    private async Task<int> ScanOnePageAsync(CancellationToken cancellationToken)
    {
        var entries = await records.ListWithRevisionsAsync(scanCursor, PageSize, cancellationToken);
        scanCursor = entries.Count == 0 ? null : entries[^1].Record.PaymentId; // at the end: from the first again
        var now = time.GetUtcNow();
        return await MoveAsync(entries.Where(entry => IsDue(entry.Record, now)).ToArray(), now, cancellationToken);
    }

    private async Task<int> MoveAsync(IReadOnlyList<(PaymentRecord Record, long Revision)> due, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (due.Count == 0)
        {
            return 0;
        }

        await Parallel.ForEachAsync(due, new ParallelOptions { MaxDegreeOfParallelism = MaxConcurrentWrites, CancellationToken = cancellationToken },
            async (entry, token) => await archive.PutAsync(
                new ArchivedRecord(entry.Record.PaymentId, entry.Record.Order.MerchantId, PaymentRecordStore.ToJson(entry.Record), now), token));
        return await records.DeleteFinishedAsync(due, cancellationToken);
    }
}

using Microsoft.Extensions.Logging;
using Payments.Cosmos;
using Payments.Orchestrator.Client.Records;
using Payments.Telemetry;

namespace Payments.Failover.Core.Archiving;

/// <summary>Moves finished payment records out of etcd once they are older than <c>keepFor</c>: each is written to the
/// archive in Cosmos DB first (idempotent upsert), then deleted from etcd only if it is still at the revision that was
/// archived. So etcd keeps the payments of the last <c>keepFor</c> (and every unfinished one), and a payment is always
/// in one of the two; the API reads the archive when etcd has no record (ADR 0004).
/// <para>Correctness needs no lock: two archivers (both regions, or two replicas) write the same record and the
/// compare on the revision lets one delete succeed. Each pass reads at most <see cref="MaxPagesPerPass"/> pages of
/// <see cref="PageSize"/> records and keeps a cursor, so a pass is bounded and the next one goes on where it stopped.</para></summary>
public sealed class PaymentArchiver(PaymentRecordStore records, RecordArchive archive, TimeProvider time, TimeSpan keepFor, ILogger logger)
{
    public const int PageSize = 256;
    public const int MaxPagesPerPass = 64;

    /// <summary>Archive writes in flight at once (each a Cosmos point write).</summary>
    public const int MaxConcurrentWrites = 8;

    private static readonly System.Diagnostics.Metrics.Counter<long> Archived =
        PaymentsTelemetry.Meter.CreateCounter<long>("payments.records.archived", description: "Finished payment records moved from etcd to the archive");

    private string? cursor;

    public TimeSpan KeepFor => keepFor;

    /// <summary>One bounded pass from the cursor; the number of records moved to the archive.</summary>
    public async Task<int> PassAsync(CancellationToken cancellationToken)
    {
        var moved = 0;
        for (var page = 0; page < MaxPagesPerPass; page++)
        {
            var entries = await records.ListWithRevisionsAsync(cursor, PageSize, cancellationToken);
            if (entries.Count == 0)
            {
                cursor = null; // at the end: the next pass starts from the first record again
                break;
            }

            var now = time.GetUtcNow();
            var due = entries.Where(entry => entry.Record.IsTerminal && now - entry.Record.UpdatedAt >= keepFor).ToArray();
            await Parallel.ForEachAsync(due, new ParallelOptions { MaxDegreeOfParallelism = MaxConcurrentWrites, CancellationToken = cancellationToken },
                async (entry, token) => await archive.PutAsync(
                    new ArchivedRecord(entry.Record.PaymentId, entry.Record.Order.MerchantId, PaymentRecordStore.ToJson(entry.Record), now), token));
            moved += await records.DeleteFinishedAsync(due.Select(entry => (entry.Record.PaymentId, entry.Revision)).ToArray(), cancellationToken);
            cursor = entries[^1].Record.PaymentId;
        }

        if (moved > 0)
        {
            Archived.Add(moved);
            logger.LogInformation("Archived {Count} finished payment records older than {KeepFor}", moved, keepFor);
        }

        return moved;
    }
}

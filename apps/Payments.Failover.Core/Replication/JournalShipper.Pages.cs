using System.Net;
using Microsoft.Azure.Cosmos;
using Payments.Ledger.Contracts;

namespace Payments.Failover.Core.Replication;

/// <summary>Pages: what the head becomes with one, and writing one without overwriting another shipper's.</summary>
public sealed partial class JournalShipper
{
    /// <summary>The head once <paramref name="entries"/> and <paramref name="records"/> are page n + 1.</summary>
    private static JournalHead NextHead(JournalHead head, IReadOnlyList<JournalEntry> entries, IReadOnlyList<RecordDocument> records, long? through) =>
        // From the feeds, the page holds everything through one revision: the journal and the records are shipped that
        // far, whether or not the page has any of them (else a family that stays quiet would hold its feed back).
        head with
        {
            Pages = head.Pages + 1,
            LastSequence = entries.Count == 0 ? head.LastSequence : entries[^1].Sequence,
            LastAppliedAtUnixMs = entries.Count == 0 ? head.LastAppliedAtUnixMs : entries[^1].AppliedAt.ToUnixTimeMilliseconds(),
            LastRecordRevision = through is { } recordsThrough
                ? Math.Max(head.LastRecordRevision, recordsThrough)
                : records.Count == 0 ? head.LastRecordRevision : records.Max(record => record.Revision),
            LastJournalRevision = through is { } journalThrough ? Math.Max(head.LastJournalRevision, journalThrough) : head.LastJournalRevision,
        };

    /// <summary>The head after a page written before pages carried it: what its own entries and records say (the
    /// journal's revision stays: the next round reads on by sequence, and a record shipped twice is applied once).</summary>
    private static JournalHead LegacyNextHead(JournalHead head, JournalPage stored) => head with
    {
        Pages = stored.Number,
        LastSequence = stored.Entries.Count == 0 ? head.LastSequence : Math.Max(head.LastSequence, stored.Entries[^1].Sequence),
        LastAppliedAtUnixMs = stored.Entries.Count == 0 ? head.LastAppliedAtUnixMs : stored.Entries[^1].AppliedAtUnixMs,
        LastRecordRevision = stored.Records is { Count: > 0 } shipped ? Math.Max(head.LastRecordRevision, shipped.Max(record => record.Revision)) : head.LastRecordRevision,
    };

    /// <summary>Creates the page; null when it did (or replaced one that does not continue this region's journal), else
    /// the page of that number already stored, which continues it. Never overwrites a page of this journal.</summary>
    private async Task<JournalPage?> CreatePageAsync(JournalPage page, IReadOnlyList<JournalEntry> entries, JournalHead head, CancellationToken cancellationToken)
    {
        try
        {
            await journal.CreateItemAsync(page, new PartitionKey(page.Id), cancellationToken: cancellationToken);
            return null;
        }
        catch (CosmosException exception) when (exception.StatusCode == HttpStatusCode.Conflict)
        {
            var stored = await journal.ReadItemAsync<JournalPage>(page.Id, new PartitionKey(page.Id), cancellationToken: cancellationToken);
            if (Continues(stored.Resource, head, entries))
            {
                return stored.Resource;
            }

            // Not this journal's next page (left in the container by something else): replaced, on its ETag, so a
            // shipper that writes the page meanwhile makes this fail and the round ends.
            await journal.ReplaceItemAsync(page, page.Id, new PartitionKey(page.Id), new ItemRequestOptions { IfMatchEtag = stored.ETag }, cancellationToken);
            return null;
        }
    }

    /// <summary>Whether a stored page continues this journal after <paramref name="head"/>: its entries come after the
    /// head, and those this round read too are the same (the same transfers at the same sequences; a shipper's feeds may
    /// have been further along or behind, never elsewhere).</summary>
    private static bool Continues(JournalPage stored, JournalHead head, IReadOnlyList<JournalEntry> entries)
    {
        if (stored.Entries.Count > 0 && stored.Entries[0].Sequence <= head.LastSequence)
        {
            return false;
        }

        for (var index = 0; index < Math.Min(stored.Entries.Count, entries.Count); index++)
        {
            if (stored.Entries[index].Sequence != entries[index].Sequence || stored.Entries[index].TransferId != entries[index].TransferId.Value)
            {
                return false;
            }
        }

        return true;
    }
}

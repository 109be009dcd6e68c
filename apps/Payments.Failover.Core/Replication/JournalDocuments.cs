using System.Net;
using System.Text.Json.Serialization;
using Microsoft.Azure.Cosmos;
using Payments.Domain;
using Payments.Ledger.Contracts;

namespace Payments.Failover.Core.Replication;

/// <summary>One journal entry as replicated: every field the standby needs to copy it exactly.</summary>
public sealed record JournalEntryDocument(
    [property: JsonPropertyName("sequence")] long Sequence,
    [property: JsonPropertyName("transferId")] string TransferId,
    [property: JsonPropertyName("kind")] string Kind,
    [property: JsonPropertyName("debit")] string DebitAccountId,
    [property: JsonPropertyName("credit")] string CreditAccountId,
    [property: JsonPropertyName("amountMinor")] long AmountMinor,
    [property: JsonPropertyName("currency")] string Currency,
    [property: JsonPropertyName("pendingId")] string? PendingId,
    [property: JsonPropertyName("timeoutAtUnixMs")] long? TimeoutAtUnixMs,
    [property: JsonPropertyName("reference")] string? Reference,
    [property: JsonPropertyName("appliedAtUnixMs")] long AppliedAtUnixMs,
    [property: JsonPropertyName("fundedBy"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? FundedBy = null)
{
    public static JournalEntryDocument From(JournalEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        return new(entry.Sequence, entry.TransferId.Value, entry.Kind.ToString(), entry.DebitAccountId.Value, entry.CreditAccountId.Value,
            entry.Amount.AmountMinor, entry.Amount.Currency.Code, entry.PendingId?.Value, entry.TimeoutAt?.ToUnixTimeMilliseconds(),
            entry.Reference, entry.AppliedAt.ToUnixTimeMilliseconds(), entry.FundedBy?.Value);
    }

    public JournalEntry ToEntry() => new(
        Sequence, Domain.TransferId.Parse(TransferId), Enum.Parse<TransferKind>(Kind), AccountId.ParseAny(DebitAccountId),
        AccountId.ParseAny(CreditAccountId), new Money(AmountMinor, Domain.Currency.FromCode(Currency)),
        PendingId is null ? null : Domain.TransferId.Parse(PendingId),
        TimeoutAtUnixMs is { } timeout ? DateTimeOffset.FromUnixTimeMilliseconds(timeout) : null, Reference,
        DateTimeOffset.FromUnixTimeMilliseconds(AppliedAtUnixMs), FundedBy is null ? null : Domain.TransferId.Parse(FundedBy));
}

/// <summary>Page <c>n</c> of a region's replicated journal (id <c>{region}-page-{n:D12}</c>). A page is visible to
/// readers only once the region's head counts it, and a page of the journal is never rewritten (only a document that
/// does not continue it is replaced: <c>JournalShipper.CreatePageAsync</c>).</summary>
/// <param name="Head">The region's head once this page is shipped (pages from before it was kept lack it): a shipper
/// that finds the page written already moves the head to what the page holds, not to what it would have written.</param>
public sealed record JournalPage(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("region")] string Region,
    [property: JsonPropertyName("number")] long Number,
    [property: JsonPropertyName("entries")] IReadOnlyList<JournalEntryDocument> Entries,
    [property: JsonPropertyName("records")] IReadOnlyList<RecordDocument>? Records = null,
    [property: JsonPropertyName("head")] JournalHead? Head = null)
{
    public static string IdFor(string region, long number) => $"{region}-page-{number:D12}";
}

/// <summary>A record the API keeps beside the ledger (merchant key hashes, account owners, payment records), by its
/// key relative to the region's key prefix, as of the source's etcd revision.</summary>
public sealed record RecordDocument(
    [property: JsonPropertyName("key")] string Key,
    [property: JsonPropertyName("value")] string ValueBase64,
    [property: JsonPropertyName("revision")] long Revision);

/// <summary>A region's replication checkpoint (id <c>{region}-head</c>): how many pages it has shipped and the last
/// sequence in them. Changed only by ETag compare-and-swap.</summary>
/// <param name="LastRecordRevision">The records are shipped through this etcd revision.</param>
/// <param name="LastJournalRevision">The journal is shipped through this etcd revision (beyond its last entry's, when
/// later revisions held none); 0 from a shipper before it, which <see cref="LastSequence"/> then tells.</param>
public sealed record JournalHead(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("region")] string Region,
    [property: JsonPropertyName("pages")] long Pages,
    [property: JsonPropertyName("lastSequence")] long LastSequence,
    [property: JsonPropertyName("lastAppliedAtUnixMs")] long LastAppliedAtUnixMs,
    [property: JsonPropertyName("lastRecordRevision")] long LastRecordRevision = 0,
    [property: JsonPropertyName("lastJournalRevision")] long LastJournalRevision = 0)
{
    public static string IdFor(string region) => $"{region}-head";
}

/// <summary>Reads of the journal container shared by the replicator and the switchover's progress check.</summary>
public static class JournalStore
{
    /// <summary>A point read; null when the document does not exist. <paramref name="serverErrorMeansMissing"/>: the
    /// local Cosmos-compatible server answers 500 where the service answers 404 (<c>CosmosSettings.ServerErrorMeansMissing</c>).
    /// Against the service a 500 is a fault and is thrown: taken for "nothing there", a region taking over ended its
    /// catch-up on the other region's journal as done, and skipped the pages it had not applied.</summary>
    public static async Task<T?> TryReadAsync<T>(Container journal, string id, CancellationToken cancellationToken, bool serverErrorMeansMissing = false)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(journal);
        try
        {
            return (await journal.ReadItemAsync<T>(id, new PartitionKey(id), cancellationToken: cancellationToken)).Resource;
        }
        catch (CosmosException exception) when (exception.StatusCode == HttpStatusCode.NotFound
                                                || (serverErrorMeansMissing && exception.StatusCode == HttpStatusCode.InternalServerError))
        {
            return null;
        }
    }
}

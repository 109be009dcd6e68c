using System.Net;
using Microsoft.Azure.Cosmos;

namespace Payments.Cosmos;

/// <summary>One record moved out of etcd: its id, who may read it (a merchant id), the record's own JSON as etcd
/// held it, and when it was archived. Partition key <c>/id</c>: every read is a point read.</summary>
public sealed record ArchivedRecord(string Id, string Owner, string Record, DateTimeOffset ArchivedAt);

/// <summary>The archive container in the database both regions share (default <c>payments-archive</c>): finished
/// payment records that left etcd after their retention (docs/storage.md). Point operations only, so the same code
/// runs against Cosmos DB and the local Cosmos-compatible server.</summary>
/// <param name="serverErrorMeansMissing"><see cref="CosmosSettings.ServerErrorMeansMissing"/>.</param>
public sealed class RecordArchive(Container container, bool serverErrorMeansMissing = false)
{
    /// <summary>Writes the record (idempotent: both regions may archive the same finished record, byte for byte).</summary>
    public async Task PutAsync(ArchivedRecord record, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(record);
        await container.UpsertItemAsync(record, new PartitionKey(record.Id), new ItemRequestOptions { EnableContentResponseOnWrite = false }, cancellationToken);
    }

    /// <summary>The archived record with this id, or null.</summary>
    public async Task<ArchivedRecord?> GetAsync(string id, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        try
        {
            return (await container.ReadItemAsync<ArchivedRecord>(id, new PartitionKey(id), cancellationToken: cancellationToken)).Resource;
        }
        catch (CosmosException exception) when (exception.StatusCode == HttpStatusCode.NotFound
                                                || (serverErrorMeansMissing && exception.StatusCode == HttpStatusCode.InternalServerError))
        {
            return null;
        }
    }
}

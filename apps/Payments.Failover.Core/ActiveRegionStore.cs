using System.Net;
using System.Text.Json.Serialization;
using Microsoft.Azure.Cosmos;

namespace Payments.Failover.Core;

/// <summary>The one global fact that decides which region accepts payment writes.</summary>
public sealed record ActiveRegionRecord(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("activeRegion")] string ActiveRegion,
    [property: JsonPropertyName("epoch")] long Epoch,
    [property: JsonPropertyName("leaseUntilUnixMs")] long LeaseUntilUnixMs,
    [property: JsonPropertyName("handedOverAtUnixMs"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? HandedOverAtUnixMs = null)
{
    public const string DocumentId = "active-region";

    [JsonIgnore]
    public DateTimeOffset LeaseUntil => DateTimeOffset.FromUnixTimeMilliseconds(LeaseUntilUnixMs);

    /// <summary>When the last planned switchover handed the record over (kept by renewals, dropped by a promotion):
    /// the switchover cool-down counts from it, in every failover process of both regions.</summary>
    [JsonIgnore]
    public DateTimeOffset? HandedOverAt => HandedOverAtUnixMs is { } ms ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null;
}

/// <summary>The active-region record in Cosmos DB, changed only by compare-and-swap on its ETag: of two regions that
/// read the same version and both try to take it, exactly one succeeds (the other gets 412). Point operations only.</summary>
/// <param name="serverErrorMeansMissing">The local Cosmos-compatible server answers 500 for a missing document where
/// Cosmos DB answers 404 (<c>CosmosSettings.ServerErrorMeansMissing</c>): read as 404 then.</param>
public sealed class ActiveRegionStore(Container container, bool serverErrorMeansMissing = false)
{
    /// <summary>Creates the record for the first active region, if there is none yet (a second bootstrap is a no-op).</summary>
    public async Task BootstrapAsync(string region, DateTimeOffset leaseUntil, CancellationToken cancellationToken, long epoch = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(epoch, 1);
        var record = new ActiveRegionRecord(ActiveRegionRecord.DocumentId, region, epoch, leaseUntil.ToUnixTimeMilliseconds());
        try
        {
            await container.CreateItemAsync(record, new PartitionKey(record.Id), cancellationToken: cancellationToken);
        }
        catch (CosmosException exception) when (exception.StatusCode == HttpStatusCode.Conflict)
        {
            // Already there: whoever created it first decided the first active region.
        }
    }

    /// <summary>The record and its ETag; a missing record is a <see cref="CosmosException"/> with 404.</summary>
    public async Task<(ActiveRegionRecord Record, string ETag)> ReadAsync(CancellationToken cancellationToken)
    {
        try
        {
            var response = await container.ReadItemAsync<ActiveRegionRecord>(ActiveRegionRecord.DocumentId, new PartitionKey(ActiveRegionRecord.DocumentId), cancellationToken: cancellationToken);
            return (response.Resource, response.ETag);
        }
        catch (CosmosException exception) when (serverErrorMeansMissing && exception.StatusCode == HttpStatusCode.InternalServerError)
        {
            throw new CosmosException("The active-region record is missing.", HttpStatusCode.NotFound, 0, exception.ActivityId, exception.RequestCharge);
        }
    }

    /// <summary>Replaces the record if it is still at <paramref name="etag"/>; the new ETag, or null when it changed.</summary>
    public async Task<string?> TryReplaceAsync(ActiveRegionRecord record, string etag, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(record);
        try
        {
            var response = await container.ReplaceItemAsync(record, record.Id, new PartitionKey(record.Id), new ItemRequestOptions { IfMatchEtag = etag }, cancellationToken);
            return response.ETag;
        }
        catch (CosmosException exception) when (exception.StatusCode == HttpStatusCode.PreconditionFailed)
        {
            return null;
        }
    }
}

using System.Net;
using Microsoft.Azure.Cosmos;
using Payments.Cosmos;
using Payments.Orchestrator.Client.Records;

namespace Payments.Api.Apis;

/// <summary>Reads finished payments that left etcd for the archive (<c>PaymentArchiver</c> in the failover service):
/// the same record, for its merchant only. Null <paramref name="archive"/>: no Cosmos DB (one region), nothing archived.</summary>
public sealed class ArchivedPayments(RecordArchive? archive)
{
    /// <summary>"pay_" and 1–60 letters or digits: the shape of every payment id this API issues.</summary>
    public static bool IsPaymentIdShape(string paymentId) =>
        paymentId is { Length: > 4 and <= 64 } && paymentId.StartsWith("pay_", StringComparison.Ordinal)
        && paymentId.AsSpan(4).IndexOfAnyExcept(IdCharacters) < 0;

    private static readonly System.Buffers.SearchValues<char> IdCharacters =
        System.Buffers.SearchValues.Create("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");

    /// <summary>The merchant's archived payment, or null (not archived, another merchant's, or not a payment id).</summary>
    /// <exception cref="ArchiveUnavailableException">Cosmos DB did not answer: the caller says 503, not 404.</exception>
    public async Task<PaymentRecord?> GetAsync(string paymentId, string merchantId, CancellationToken cancellationToken)
    {
        // Only what could be a payment id costs a read (ids are "pay_" and hex): anything else — '#', '?', '\\' and
        // other characters Cosmos DB refuses in an id — is simply not an archived payment, never a 503.
        if (archive is null || !IsPaymentIdShape(paymentId))
        {
            return null;
        }

        ArchivedRecord? archived;
        try
        {
            archived = await archive.GetAsync(paymentId, cancellationToken);
        }
        catch (CosmosException exception) when (exception.StatusCode == HttpStatusCode.NotFound)
        {
            return null; // the container itself is not there yet: nothing was archived
        }
        catch (Exception exception) when (exception is CosmosException or HttpRequestException
                                          or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            throw new ArchiveUnavailableException(exception);
        }

        return archived is null || archived.Owner != merchantId ? null : PaymentRecordStore.FromJson(archived.Record);
    }
}

/// <summary>The archive (Cosmos DB) did not answer.</summary>
public sealed class ArchiveUnavailableException(Exception inner) : Exception("The payment archive did not answer.", inner);

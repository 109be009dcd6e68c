using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Payments.Etcd;
using Payments.Orchestrator.Client.Models;

namespace Payments.Orchestrator.Client.Records;

/// <summary>Creating records.</summary>
public sealed partial class PaymentRecordStore
{
    /// <summary>Creates the record (with its in-flight marker unless it is terminal), or returns the one already there
    /// with that id.</summary>
    public async Task<PaymentRecord> CreateAsync(PaymentRecord record, CancellationToken cancellationToken) =>
        // Nothing alongside: no compare of its own to fail, no lease to lose, so there is always a record to return.
        (await CreateWithAsync(record, new TxnRequest(), cancellationToken))!.Value.Record;

    /// <summary>Creates the record together with <paramref name="alongside"/>'s compares and writes (e.g. the request's
    /// idempotent answer, compared on its claim), all or nothing. The record and true when all was written; the record
    /// there is and false when one exists with that id (then nothing was written); null when a compare of
    /// <paramref name="alongside"/> does not hold or a lease it writes under is gone — nothing was written. Never the
    /// record alone: a claim that fails its compare was taken over by a retry, which decides the key's payment itself,
    /// and may name it by another day (its clock past UTC midnight): a record written here too was a second payment, a
    /// second debit (a review found it).</summary>
    public async Task<(PaymentRecord Record, bool Created)?> CreateWithAsync(PaymentRecord record, TxnRequest alongside, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(alongside);
        var (request, fence) = CreateRequest(record, alongside);
        TxnResponse response;
        try
        {
            response = await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
        }
        catch (RpcException exception) when (IdempotencyStore.IsLeaseNotFound(exception))
        {
            return null;
        }

        if (!response.Succeeded)
        {
            ThrowIfFencedOff(fence, response);
            var existing = response.Responses[0].ResponseRange.Kvs;
            return existing.Count > 0 ? (Decode(existing[0].Value), false) : null;
        }

        if (record.IsTerminal)
        {
            PaymentRecordMetrics.CountTerminal(record);
        }

        return (record, true);
    }

    /// <summary>For the API and the saga of a region in a two-region deployment: the region's epoch fence, asked for at
    /// each creation and change. A payment is accepted (its record and its 202 written) only while the region holds its
    /// epoch: the API's own view of the epoch is polled, and in the half second after a demotion it wrote records — and
    /// answered 202 — that the region taking over never received, so the payments were never made.</summary>
    public Func<IWriteFence?>? RegionFence { get; init; }

    private static void ThrowIfFencedOff(IWriteFence? fence, TxnResponse response, string consequence = "the payment was not accepted")
    {
        if (fence is not null && fence.WasFencedOff(response))
        {
            throw new Payments.Ledger.Contracts.RegionNotWritableException(
                $"This region does not hold {fence.Description} (demoted, or another region was promoted); {consequence}.");
        }
    }

    /// <summary>The record (create-only) and its marker, with <paramref name="alongside"/>'s compares and writes, and
    /// the region's fence if there is one; on a failed compare the answer holds the record there is (first).</summary>
    private (TxnRequest Request, IWriteFence? Fence) CreateRequest(PaymentRecord record, TxnRequest? alongside)
    {
        var key = Key(record.PaymentId);
        var request = new TxnRequest();
        request.Compare.Add(EtcdBytes.CreateRevisionIs(key, 0));
        request.Success.Add(EtcdBytes.Put(key, Encode(record)));
        request.Success.Add(record.IsTerminal ? EtcdBytes.Put(DoneKey(record), ByteString.Empty) : EtcdBytes.Put(InFlightKey(record), ByteString.Empty));
        request.Failure.Add(EtcdBytes.Get(key));
        if (alongside is not null)
        {
            request.Compare.Add(alongside.Compare);
            request.Success.Add(alongside.Success);
        }

        var fence = RegionFence?.Invoke();
        fence?.AddFence(request); // its read on failure comes after the record's
        return (request, fence);
    }
}

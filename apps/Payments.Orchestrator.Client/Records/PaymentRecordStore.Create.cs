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
        (await CreateAsync(record, alongside: null, cancellationToken)).Record;

    /// <summary>Creates the record unless one exists (then that one is returned), in one transaction with
    /// <paramref name="alongside"/>'s compares and writes when they hold (e.g. the request's idempotent answer). When they
    /// do not (or a lease they write under is gone), the record is created alone: <c>AlongsideWritten</c> says which.</summary>
    public async Task<(PaymentRecord Record, bool AlongsideWritten)> CreateAsync(
        PaymentRecord record, TxnRequest? alongside, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(record);
        var request = CreateRequest(record, alongside);
        TxnResponse response;
        try
        {
            response = await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
        }
        catch (RpcException exception) when (alongside is not null && IdempotencyStore.IsLeaseNotFound(exception))
        {
            return (await CreateAsync(record, cancellationToken), false);
        }

        if (!response.Succeeded)
        {
            var existing = response.Responses[0].ResponseRange.Kvs;
            return existing.Count > 0 ? (Decode(existing[0].Value), false) : (await CreateAsync(record, cancellationToken), false);
        }

        if (record.IsTerminal)
        {
            PaymentRecordMetrics.CountTerminal(record);
        }

        return (record, alongside is not null);
    }

    /// <summary>Creates the record together with <paramref name="alongside"/>'s compares and writes, all or nothing:
    /// true when all was written; false when the record exists already, a compare of <paramref name="alongside"/>
    /// does not hold or a lease it writes under is gone — then nothing was written.</summary>
    public async Task<bool> TryCreateWithAsync(PaymentRecord record, TxnRequest alongside, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(alongside);
        var request = CreateRequest(record, alongside);
        try
        {
            if (!(await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken)).Succeeded)
            {
                return false;
            }
        }
        catch (RpcException exception) when (IdempotencyStore.IsLeaseNotFound(exception))
        {
            return false;
        }

        if (record.IsTerminal)
        {
            PaymentRecordMetrics.CountTerminal(record);
        }

        return true;
    }

    /// <summary>The record (create-only) and its marker, with <paramref name="alongside"/>'s compares and writes; on a
    /// failed compare the answer holds the record there is.</summary>
    private TxnRequest CreateRequest(PaymentRecord record, TxnRequest? alongside)
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

        return request;
    }
}

using System.Text.Json;
using System.Text.Json.Serialization;
using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Payments.Domain;
using Payments.Etcd;
using Payments.Orchestrator.Client.Models;

namespace Payments.Orchestrator.Client.Records;

/// <summary>Payment records on etcd; every write is create-only or compare-and-swap.</summary>
/// <remarks>Layout under the prefix: <c>pay_…</c> the records · <c>~in-flight/{merchant}/{payment}</c> one marker per
/// unfinished payment, created with the record and deleted in the same transaction that makes it terminal, so a
/// merchant's payments in flight are counted by one range count (the API's per-merchant cap) · <c>~done/{unix ms,
/// 13 digits}/{payment}</c> one key per finished payment, written in the transaction that makes it terminal: the
/// archiver reads what is due in time order instead of scanning every record (payment ids are hashes, in no time
/// order). '~' sorts after every payment id, so listing the records stops before both.</remarks>
public sealed partial class PaymentRecordStore(EtcdConnection etcd, string prefix)
{
    /// <summary>Compare-and-swap rounds before a terminal write gives up (it then fails its activity, which is retried).</summary>
    public const int MaxCasAttempts = 8;

    /// <summary>Largest page <see cref="ListAsync"/> returns.</summary>
    public const int MaxListPage = 500;
    private readonly string root = EtcdBytes.AsPrefix(prefix);

    /// <summary>Where a status change that raises a payment event leaves the marker the webhook dispatcher takes
    /// (<see cref="PaymentEvents"/>); null: events are logged, and nothing delivers them (tools, checkers).</summary>
    public string? OutboxPrefix
    {
        get => outboxPrefix;
        init => outboxPrefix = value is null ? null : EtcdBytes.AsPrefix(value); // once, not per status change
    }

    private readonly string? outboxPrefix;

    /// <summary>The payment event log (<see cref="PaymentEvents"/>), under this store's prefix.</summary>
    public string EventsRoot => root + "~events/";

    public async Task<(PaymentRecord Record, long Revision)?> GetAsync(string paymentId, CancellationToken cancellationToken)
    {
        var response = await EtcdConnection.CallAsync(
            token => etcd.Kv.RangeAsync(new RangeRequest { Key = EtcdBytes.Key(Key(paymentId)) }, cancellationToken: token), cancellationToken);
        var kv = response.Kvs.FirstOrDefault();
        return kv is null ? null : (Decode(kv.Value), kv.ModRevision);
    }

    /// <summary>The records of several ids, read together in one transaction (one round trip, one revision); the
    /// ids without a record are left out.</summary>
    public async Task<IReadOnlyList<PaymentRecord>> GetManyAsync(IReadOnlyList<string> paymentIds, CancellationToken cancellationToken)
    {
        var request = new TxnRequest();
        request.Success.Add(GetReads(paymentIds));
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
        return RecordsFrom(response.Responses);
    }

    /// <summary>The reads of <see cref="GetManyAsync"/> (one per id, in order), for a caller that reads more in the
    /// same transaction; <see cref="RecordsFrom"/> makes the records of their answers.</summary>
    public IEnumerable<RequestOp> GetReads(IReadOnlyList<string> paymentIds)
    {
        ArgumentNullException.ThrowIfNull(paymentIds);
        return paymentIds.Select(paymentId => EtcdBytes.Get(Key(paymentId))).ToArray();
    }

    /// <summary>The records in the answers to <see cref="GetReads"/> (the ids without one left out).</summary>
    public static IReadOnlyList<PaymentRecord> RecordsFrom(IEnumerable<ResponseOp> answers) =>
        answers.SelectMany(answer => answer.ResponseRange.Kvs).Select(kv => Decode(kv.Value)).ToArray();

    public async Task<IReadOnlyList<PaymentRecord>> ListAsync(string? afterPaymentId, int limit, CancellationToken cancellationToken)
    {
        return (await ListWithRevisionsAsync(afterPaymentId, limit, cancellationToken)).Select(entry => entry.Record).ToArray();
    }

    /// <summary>Like <see cref="ListAsync"/>, with each record's revision (for a compare-and-swap or a delete).</summary>
    public async Task<IReadOnlyList<(PaymentRecord Record, long Revision)>> ListWithRevisionsAsync(
        string? afterPaymentId, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(limit, MaxListPage);
        var request = new RangeRequest
        {
            // Strictly after the last id: its key with a zero byte appended is the next possible key.
            Key = afterPaymentId is null ? EtcdBytes.Key(root) : EtcdBytes.Key(Key(afterPaymentId) + "\0"),
            RangeEnd = EtcdBytes.Key(root + "~"),
            Limit = limit,
        };
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(request, cancellationToken: token), cancellationToken);
        return response.Kvs.Select(kv => (Record: TryDecode(kv.Value), kv.ModRevision)).Where(entry => entry.Record is not null)
            .Select(entry => (entry.Record!, entry.ModRevision)).ToArray();
    }

    /// <summary>Deletes finished records that are still at their revision (archived elsewhere first), each with its
    /// index key: up to <see cref="MaxDeletesPerTxn"/> in one transaction; when one of them changed meanwhile, each
    /// alone, so the changed one stays. Returns how many were deleted.</summary>
    public async Task<int> DeleteFinishedAsync(IReadOnlyList<(PaymentRecord Record, long Revision)> records, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(records);
        var deleted = 0;
        foreach (var chunk in records.Chunk(MaxDeletesPerTxn))
        {
            if (await DeleteAllAsync(chunk, cancellationToken))
            {
                deleted += chunk.Length;
                continue;
            }

            foreach (var one in chunk)
            {
                deleted += await DeleteAllAsync([one], cancellationToken) ? 1 : 0;
            }
        }

        return deleted;
    }

    /// <summary>Records per transaction at most: a compare and two deletes each stay within etcd's default
    /// <c>--max-txn-ops</c> of 128.</summary>
    public const int MaxDeletesPerTxn = 40;

    private async Task<bool> DeleteAllAsync(IReadOnlyList<(PaymentRecord Record, long Revision)> records, CancellationToken cancellationToken)
    {
        var request = new TxnRequest();
        foreach (var (record, revision) in records)
        {
            request.Compare.Add(EtcdBytes.ModRevisionIs(Key(record.PaymentId), revision));
            request.Success.Add(EtcdBytes.Delete(Key(record.PaymentId)));
            request.Success.Add(EtcdBytes.Delete(DoneKey(record)));
        }

        var response = await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
        return response.Succeeded;
    }

    /// <summary>Every record, page by page (bounded by <paramref name="maxRecords"/>): for the checkers.</summary>
    public async Task<IReadOnlyList<PaymentRecord>> ReadAllAsync(int maxRecords, CancellationToken cancellationToken)
    {
        var all = new List<PaymentRecord>();
        string? after = null;
        while (all.Count < maxRecords)
        {
            var page = await ListAsync(after, MaxListPage, cancellationToken);
            if (page.Count == 0)
            {
                return all;
            }

            all.AddRange(page);
            after = page[^1].PaymentId;
        }

        throw new InvalidOperationException($"More than {maxRecords} payment records.");
    }

    /// <summary>Writes the terminal outcome once: a record already terminal is left as it is (the first outcome
    /// stands); a missing record (a saga started without the API) is nothing to update.</summary>
    public async Task RecordOutcomeAsync(string paymentId, PaymentOutcome outcome, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(outcome);
        await ChangeAsync(paymentId, record => record.IsTerminal ? null : record with { Status = outcome.Status, Reason = outcome.Reason, UpdatedAt = now },
            cancellationToken);
    }

    /// <summary>Applies <paramref name="change"/> by compare-and-swap (at most <see cref="MaxCasAttempts"/> rounds):
    /// it gets the record as it is now and returns the new one, or null to leave it. Returns the record as it is after
    /// (null when there is none).</summary>
    public async Task<PaymentRecord?> ChangeAsync(string paymentId, Func<PaymentRecord, PaymentRecord?> change, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(change);
        var hint = TakeKept(paymentId, change);
        for (var attempt = 1; attempt <= MaxCasAttempts; attempt++)
        {
            var current = attempt == 1 && hint is not null ? hint : await GetAsync(paymentId, cancellationToken);
            if (current is not { Record: var record, Revision: var revision })
            {
                return null;
            }

            if (change(record) is not { } changed)
            {
                return record;
            }

            if (await UpdateAsync(changed, revision, cancellationToken, previousStatus: record.Status))
            {
                return changed;
            }
        }

        throw new EtcdContentionException($"Payment record {paymentId} kept changing for {MaxCasAttempts} attempts.");
    }

    /// <summary>How many of the merchant's payments are not finished (a serializable read: a limit, not a ledger
    /// figure, so it need not cost a quorum round).</summary>
    public async Task<long> CountInFlightAsync(string merchantId, CancellationToken cancellationToken)
    {
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(CountInFlightRead(merchantId).RequestRange, cancellationToken: token), cancellationToken);
        return response.Count;
    }

    /// <summary>The read of <see cref="CountInFlightAsync"/> (its answer's <c>Count</c>), for a caller's own
    /// transaction (which makes it linearizable, like the transaction's other reads).</summary>
    public RequestOp CountInFlightRead(string merchantId)
    {
        var markers = InFlightRoot + merchantId + "/";
        return new RequestOp
        {
            RequestRange = new RangeRequest { Key = EtcdBytes.Key(markers), RangeEnd = EtcdBytes.PrefixEnd(markers), CountOnly = true, Serializable = true },
        };
    }

    /// <summary>Unfinished payments, a page of their in-flight markers (<c>{merchant}/{payment}</c>, in that order) after
    /// <paramref name="afterMarker"/> (null: from the first), at most <paramref name="limit"/>: keys only, so walking
    /// them costs what is in flight, not every record ever kept.</summary>
    public async Task<IReadOnlyList<(string Marker, string PaymentId)>> ListInFlightAsync(string? afterMarker, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(limit, MaxListPage);
        var request = new RangeRequest
        {
            Key = EtcdBytes.Key(afterMarker is null ? InFlightRoot : InFlightRoot + afterMarker + "\0"),
            RangeEnd = EtcdBytes.PrefixEnd(InFlightRoot), Limit = limit, KeysOnly = true,
        };
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(request, cancellationToken: token), cancellationToken);
        return response.Kvs.Select(kv => kv.Key.ToStringUtf8()[InFlightRoot.Length..]).Select(marker => (marker, marker[(marker.LastIndexOf('/') + 1)..])).ToArray();
    }

    /// <summary>Replaces the record if it is still at <paramref name="revision"/>; false if someone changed it first.
    /// A terminal record drops its in-flight marker in the same transaction; a change from
    /// <paramref name="previousStatus"/> that raises a payment event writes the event in it too. With
    /// <see cref="RegionFence"/>, only while the region holds its epoch (else <see cref="Payments.Ledger.Contracts.RegionNotWritableException"/>):
    /// a demoted region's sagas recorded outcomes — say approval-deadline-passed for a payment the other region
    /// completed — and the webhook events with them, which it sent once it was active again.</summary>
    public async Task<bool> UpdateAsync(PaymentRecord record, long revision, CancellationToken cancellationToken, string? previousStatus = null)
    {
        ArgumentNullException.ThrowIfNull(record);
        var key = Key(record.PaymentId);
        var request = new TxnRequest();
        request.Compare.Add(EtcdBytes.ModRevisionIs(key, revision));
        request.Success.Add(EtcdBytes.Put(key, Encode(record)));
        if (record.IsTerminal)
        {
            request.Success.Add(EtcdBytes.Delete(InFlightKey(record)));
            request.Success.Add(EtcdBytes.Put(DoneKey(record), ByteString.Empty));
        }

        PaymentEvents.AddTo(request, record, previousStatus, EventsRoot, outboxPrefix);
        var fence = RegionFence?.Invoke();
        fence?.AddFence(request);
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
        ThrowIfFencedOff(fence, response, "the payment record was not changed");
        if (response.Succeeded && record.IsTerminal)
        {
            PaymentRecordMetrics.CountTerminal(record); // every caller updates a record that was not terminal yet
        }

        return response.Succeeded;
    }

    /// <summary>Finished payments last changed at or before <paramref name="before"/>, oldest first, at most
    /// <paramref name="limit"/>: their index keys and payment ids (the record may have changed since, or be gone).</summary>
    public async Task<IReadOnlyList<(string IndexKey, string PaymentId)>> ListFinishedBeforeAsync(
        DateTimeOffset before, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(limit, MaxListPage);
        var request = new RangeRequest
        {
            // The range's end is exclusive: the next millisecond's keys start there.
            Key = EtcdBytes.Key(DoneRoot), RangeEnd = EtcdBytes.Key(DoneRoot + EtcdBytes.TimeKey(before.AddMilliseconds(1))), Limit = limit, KeysOnly = true,
        };
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(request, cancellationToken: token), cancellationToken);
        return response.Kvs.Select(kv => kv.Key.ToStringUtf8()).Select(key => (key, key[(key.LastIndexOf('/') + 1)..])).ToArray();
    }

    /// <summary>The records of these ids with their revisions, read in transactions of at most
    /// <see cref="MaxReadsPerTxn"/> (etcd's default <c>--max-txn-ops</c> is 128); missing ones left out.</summary>
    public async Task<IReadOnlyDictionary<string, (PaymentRecord Record, long Revision)>> GetManyWithRevisionsAsync(
        IReadOnlyList<string> paymentIds, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(paymentIds);
        var found = new Dictionary<string, (PaymentRecord Record, long Revision)>();
        foreach (var chunk in paymentIds.Distinct().Chunk(MaxReadsPerTxn))
        {
            var request = new TxnRequest();
            foreach (var paymentId in chunk)
            {
                request.Success.Add(EtcdBytes.Get(Key(paymentId)));
            }

            var response = await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
            foreach (var kv in response.Responses.SelectMany(answer => answer.ResponseRange.Kvs))
            {
                if (TryDecode(kv.Value) is { } record)
                {
                    found[record.PaymentId] = (record, kv.ModRevision);
                }
            }
        }

        return found;
    }

    /// <summary>Reads per transaction at most (within etcd's default <c>--max-txn-ops</c> of 128).</summary>
    public const int MaxReadsPerTxn = 100;

    /// <summary>Removes index keys of finished payments (after their records were archived, or when they were stale:
    /// the record gone or changed since). Idempotent.</summary>
    public async Task DeleteIndexKeysAsync(IReadOnlyList<string> indexKeys, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(indexKeys);
        foreach (var chunk in indexKeys.Chunk(MaxDeletesPerTxn))
        {
            var request = new TxnRequest();
            foreach (var key in chunk)
            {
                request.Success.Add(EtcdBytes.Delete(key));
            }

            await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
        }
    }

    private string Key(string paymentId) => root + paymentId;

    /// <summary>The prefix every key of the store lives under (records and their index keys), for a watch.</summary>
    public string Prefix => root;

    /// <summary>The etcd key of a payment's record.</summary>
    public string KeyOf(string paymentId) => Key(paymentId);

    private string InFlightRoot => root + "~in-flight/";

    private string DoneRoot => root + "~done/";

    /// <summary>The index key a finished record has now (older ones may linger until the archiver drops them).</summary>
    public string IndexKeyOf(PaymentRecord record) => DoneKey(record);

    private string DoneKey(PaymentRecord record) => DoneRoot + EtcdBytes.TimeKey(record.UpdatedAt) + "/" + record.PaymentId;

    private string InFlightKey(PaymentRecord record) => root + InFlightMarker(record);

    /// <summary>A record's in-flight marker, relative to the store's prefix.</summary>
    private static string InFlightMarker(PaymentRecord record) => "~in-flight/" + record.Order.MerchantId + "/" + record.PaymentId;

    /// <summary>For a copy of these records that receives writes only (the standby region: replication ships what is
    /// stored, never a deletion): the marker, relative to the store's prefix, that the record stored under
    /// <paramref name="relativeKey"/> with <paramref name="value"/> no longer has because its payment finished — the
    /// source deleted it in the same transaction. Null for anything else (a marker, an index key, an unfinished
    /// payment, a value that is not a record).</summary>
    public static string? FinishedMarker(string relativeKey, ReadOnlySpan<byte> value)
    {
        ArgumentNullException.ThrowIfNull(relativeKey);
        if (relativeKey.Length == 0 || relativeKey.Contains('~', StringComparison.Ordinal) || relativeKey.Contains('/', StringComparison.Ordinal))
        {
            return null;
        }

        try
        {
            var record = FromUtf8(value);
            return record.IsTerminal && record.PaymentId == relativeKey ? InFlightMarker(record) : null;
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            return null; // not a record this code reads (any failure here would stop the replication of every page after it)
        }
    }

    /// <summary>Deletes in-flight markers (relative to the in-flight root, as <see cref="ListInFlightAsync"/> names them)
    /// whose payments have finished — a finished record never has one again — or have no record at all, which a
    /// marker written with its record only has when its deletion never came (a copy made before replication derived
    /// it). A marker whose record appeared meanwhile is kept (compared in the transaction). Returns those deleted.</summary>
    public async Task<int> DeleteStaleMarkersAsync(IReadOnlyList<(string Marker, string PaymentId, bool RecordMissing)> stale, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stale);
        var deleted = 0;
        // Finished ones together (nothing to compare); those without a record one by one, each with its compare.
        var batches = stale.Where(one => !one.RecordMissing).Chunk(MaxDeletesPerTxn).Concat(stale.Where(one => one.RecordMissing).Chunk(1));
        foreach (var batch in batches)
        {
            var request = new TxnRequest();
            foreach (var one in batch)
            {
                if (one.RecordMissing)
                {
                    request.Compare.Add(EtcdBytes.CreateRevisionIs(Key(one.PaymentId), 0));
                }

                request.Success.Add(EtcdBytes.Delete(InFlightRoot + one.Marker));
            }

            var response = await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
            deleted += response.Succeeded ? batch.Length : 0;
        }

        return deleted;
    }
}

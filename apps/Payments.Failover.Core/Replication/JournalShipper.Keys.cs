using Payments.Etcd;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core;

namespace Payments.Failover.Core.Replication;

/// <summary>Shipping from the current keys, when etcd's history no longer reaches the head (shipping stopped for longer
/// than the compaction window): what the feeds spare every other round.</summary>
public sealed partial class JournalShipper
{
    /// <summary>Entries and records after the head, at most a page of each, without the replicator's copies; with how
    /// many copies were left out, and how far the reads reached (every entry and record up to there is in the page or
    /// a copy left out: the head may move there, and a page of nothing but copies does not stop shipping).</summary>
    private async Task<(IReadOnlyList<JournalEntry> Entries, IReadOnlyList<RecordDocument> Records, int Copies, long ReadThroughSequence, long ReadThroughRecordRevision)>
        ReadCurrentKeysAsync(JournalHead head, CancellationToken cancellationToken)
    {
        var entries = await new JournalReader(ledger).ReadAsync(head.LastSequence, MaxEntriesPerPage, cancellationToken);
        var records = await ReadRecordsAsync(head.LastRecordRevision, cancellationToken);
        var lastCopy = await LastCopyAsync(cancellationToken);
        JournalEntry[] own = [.. entries.Where(entry => entry.Sequence / JournalEntry.SequencePerRevision > lastCopy)];
        RecordDocument[] ownRecords = [.. records.Where(record => record.Revision > lastCopy)];
        return (own, ownRecords, entries.Count - own.Length + records.Count - ownRecords.Length,
            entries.Select(entry => entry.Sequence).DefaultIfEmpty(head.LastSequence).Max(),
            records.Select(record => record.Revision).DefaultIfEmpty(head.LastRecordRevision).Max());
    }

    /// <summary>The revision of the replicator's last copy (<see cref="JournalReplicator.CopyMarker"/>), 0 if none:
    /// when etcd's history no longer reaches the head, copies are not known one by one any more, so every entry and
    /// record written at or before it is left out. In the standby that is everything (it writes nothing of its own); in
    /// the active region, what was last written before its catch-up: copies, which the peer holds already, or its own
    /// from an earlier term that were never shipped — which the peer, having taken over without them, does not want.
    /// Read after the entries and records (linearizable), so a copy among them is at or before it.</summary>
    private async Task<long> LastCopyAsync(CancellationToken cancellationToken)
    {
        if (Etcd is null)
        {
            return 0;
        }

        var marker = EtcdBytes.AsPrefix(RecordRoot) + JournalReplicator.CopyMarker;
        var response = await EtcdConnection.CallAsync(
            token => Etcd.Kv.RangeAsync(new Etcdserverpb.RangeRequest { Key = EtcdBytes.Key(marker), KeysOnly = true }, cancellationToken: token), cancellationToken);
        return response.Kvs.FirstOrDefault()?.ModRevision ?? 0;
    }

    /// <summary>Records changed after <paramref name="afterRevision"/>, oldest first, at most a page's worth; never
    /// ending in the middle of one etcd revision (the next page starts at the revision after the last one here).</summary>
    private async Task<IReadOnlyList<RecordDocument>> ReadRecordsAsync(long afterRevision, CancellationToken cancellationToken)
    {
        if (RecordPrefixes.Count == 0 || Etcd is null)
        {
            return [];
        }

        var root = EtcdBytes.AsPrefix(RecordRoot);
        var found = new List<(string Key, Google.Protobuf.ByteString Value, long Revision)>();
        var horizon = long.MaxValue;
        foreach (var relative in RecordPrefixes)
        {
            var prefix = root + relative;
            var request = new Etcdserverpb.RangeRequest
            {
                Key = EtcdBytes.Key(prefix),
                RangeEnd = EtcdBytes.PrefixEnd(prefix),
                MinModRevision = afterRevision + 1,
                SortTarget = Etcdserverpb.RangeRequest.Types.SortTarget.Mod,
                SortOrder = Etcdserverpb.RangeRequest.Types.SortOrder.Ascend,
                Limit = MaxEntriesPerPage,
            };
            var response = await EtcdConnection.CallAsync(token => Etcd.Kv.RangeAsync(request, cancellationToken: token), cancellationToken);
            found.AddRange(response.Kvs.Select(kv => (kv.Key.ToStringUtf8()[root.Length..], kv.Value, kv.ModRevision)));
            if (response.More && response.Kvs.Count > 0)
            {
                // This prefix has more at its last revision and after: nothing from that revision on is complete.
                horizon = Math.Min(horizon, response.Kvs[^1].ModRevision);
            }
        }

        // One etcd transaction holds at most 128 operations, so a cut revision always leaves earlier ones to ship.
        var ordered = found.Where(record => record.Revision < horizon).OrderBy(record => record.Revision).ToList();
        // Whole revisions within the page's bytes: a page over Cosmos DB's item limit is refused for good.
        ordered = ordered.Take(WholeRevisions(ordered, record => record.Revision, record => record.Key.Length + record.Value.Length, int.MaxValue)).ToList();
        return ordered.Select(record => new RecordDocument(record.Key, Convert.ToBase64String(record.Value.Span), record.Revision)).ToArray();
    }
}

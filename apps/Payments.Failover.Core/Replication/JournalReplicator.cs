using System.Globalization;
using Etcdserverpb;
using Microsoft.Azure.Cosmos;
using Payments.Etcd;
using Payments.Ledger.Core;
using Payments.Orchestrator.Client.Records;

namespace Payments.Failover.Core.Replication;

/// <summary>The warm standby's side: reads the active region's replicated journal page by page (point reads) and
/// applies it to this region's ledger (<see cref="JournalApplier"/>), recording in this region's etcd how many pages
/// of each source it has applied. In order, idempotent, restartable.</summary>
public sealed class JournalReplicator(Container journal, EtcdLedger ledger, EtcdConnection etcd, string prefix)
{
    public const int MaxPagesPerRound = 16;

    /// <summary>The local Cosmos-compatible server answers 500 for a missing document (see <see cref="JournalStore.TryReadAsync{T}"/>).</summary>
    public bool ServerErrorMeansMissing { get; init; }
    private readonly JournalApplier applier = new(ledger);

    /// <summary>Pages of <paramref name="source"/> shipped but not yet applied here, as of the last round.</summary>
    public long PagesBehind { get; private set; }

    /// <summary>The last sequence of <paramref name="source"/> applied here.</summary>
    public long AppliedSequence { get; private set; }

    /// <summary>Applies up to <see cref="MaxPagesPerRound"/> pages of <paramref name="source"/>; returns the pages applied.</summary>
    public async Task<int> ReplicateOnceAsync(string source, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(source);
        var head = await JournalStore.TryReadAsync<JournalHead>(journal, JournalHead.IdFor(source), cancellationToken, ServerErrorMeansMissing);
        var (applied, revision) = await ReadCheckpointAsync(source, cancellationToken);
        if (head is null)
        {
            PagesBehind = 0;
            return 0; // the source has shipped nothing yet
        }

        var rounds = 0;
        for (var number = applied + 1; number <= head.Pages && rounds < MaxPagesPerRound; number++, rounds++)
        {
            var page = await JournalStore.TryReadAsync<JournalPage>(journal, JournalPage.IdFor(source, number), cancellationToken, ServerErrorMeansMissing)
                       ?? throw new InvalidDataException($"Page {number} of {source} is counted by its head but missing.");
            await applier.ApplyAsync(page.Entries.Select(entry => entry.ToEntry()).ToArray(), cancellationToken);
            await ApplyRecordsAsync(page.Records ?? [], cancellationToken);
            revision = await WriteCheckpointAsync(source, number, revision, cancellationToken);
            applied = number;
            AppliedSequence = page.Entries.Count > 0 ? page.Entries[^1].Sequence : AppliedSequence;
        }

        PagesBehind = head.Pages - applied;
        return rounds;
    }

    /// <summary>Applies every page <paramref name="source"/> has shipped (bounded by <paramref name="maxRounds"/>):
    /// at promotion, before this region takes writes.</summary>
    public async Task DrainAsync(string source, int maxRounds, CancellationToken cancellationToken)
    {
        for (var round = 0; round < maxRounds; round++)
        {
            if (await ReplicateOnceAsync(source, cancellationToken) == 0 && PagesBehind == 0)
            {
                return;
            }
        }

        throw new TimeoutException($"{source}'s journal was not drained within {maxRounds} rounds ({PagesBehind} pages behind).");
    }

    /// <summary>The API's records, under this region's prefix, in the source's revision order (last writer wins, as
    /// at the source). Idempotent: applying a page again writes the same values.</summary>
    /// <remarks>Shipping reads what is stored, so a deletion at the source never arrives. The one a copy needs is
    /// derived here: a payment record that arrives finished takes its in-flight marker with it, as the source's outcome
    /// transaction did — else every payment ever made left a marker here, counted against its merchant's payments in
    /// flight after a takeover (429 for any merchant past the cap) and walked by every sweep. The others need none:
    /// records archived and events trimmed at the source are archived and trimmed here by this region's own services,
    /// and a revoked API key is expired in place (a write), not deleted.</remarks>
    private async Task ApplyRecordsAsync(IReadOnlyList<RecordDocument> records, CancellationToken cancellationToken)
    {
        var root = EtcdBytes.AsPrefix(prefix);
        // The newest action on each key in the page (etcd refuses two writes of one key in a transaction); a null
        // value deletes.
        var latest = new Dictionary<string, (long Revision, Google.Protobuf.ByteString? Value)>(StringComparer.Ordinal);
        void Keep(string key, long revision, Google.Protobuf.ByteString? value)
        {
            if (!latest.TryGetValue(key, out var kept) || kept.Revision < revision || (kept.Revision == revision && value is null))
            {
                latest[key] = (revision, value);
            }
        }

        foreach (var record in records)
        {
            var value = Google.Protobuf.ByteString.FromBase64(record.ValueBase64);
            Keep(record.Key, record.Revision, value);
            if (record.Key.StartsWith(EtcdOptions.PaymentsFamily, StringComparison.Ordinal)
                && PaymentRecordStore.FinishedMarker(record.Key[EtcdOptions.PaymentsFamily.Length..], value.Span) is { } marker)
            {
                Keep(EtcdOptions.PaymentsFamily + marker, record.Revision, null);
            }
        }

        foreach (var chunk in latest.OrderBy(entry => entry.Value.Revision).Chunk(EtcdLedger.MaxTxnOps))
        {
            var request = new TxnRequest();
            foreach (var (key, (_, value)) in chunk)
            {
                request.Success.Add(value is null ? EtcdBytes.Delete(root + key) : EtcdBytes.Put(root + key, value));
            }

            await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
        }
    }

    private string CheckpointKey(string source) => EtcdBytes.AsPrefix(prefix) + "replication/" + source + "/pages";

    private async Task<(long Pages, long ModRevision)> ReadCheckpointAsync(string source, CancellationToken cancellationToken)
    {
        var response = await EtcdConnection.CallAsync(
            token => etcd.Kv.RangeAsync(new RangeRequest { Key = EtcdBytes.Key(CheckpointKey(source)) }, cancellationToken: token), cancellationToken);
        var kv = response.Kvs.FirstOrDefault();
        return kv is null ? (0, 0) : (long.Parse(kv.Value.ToStringUtf8(), NumberStyles.None, CultureInfo.InvariantCulture), kv.ModRevision);
    }

    /// <summary>Compare-and-swap: two replicators of one region never move the checkpoint backwards.</summary>
    private async Task<long> WriteCheckpointAsync(string source, long pages, long expectedRevision, CancellationToken cancellationToken)
    {
        var key = CheckpointKey(source);
        var request = new TxnRequest();
        request.Compare.Add(EtcdBytes.ModRevisionIs(key, expectedRevision));
        request.Success.Add(EtcdBytes.Put(key, Google.Protobuf.ByteString.CopyFromUtf8(pages.ToString(CultureInfo.InvariantCulture))));
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
        if (!response.Succeeded)
        {
            throw new InvalidOperationException($"Another replicator moved the checkpoint of {source}; this round stops (the pages it applied are idempotent).");
        }

        return response.Header.Revision;
    }
}

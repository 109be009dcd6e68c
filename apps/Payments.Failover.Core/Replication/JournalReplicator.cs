using System.Globalization;
using Etcdserverpb;
using Microsoft.Azure.Cosmos;
using Payments.Etcd;
using Payments.Etcd.Regions;
using Payments.Ledger.Core;
using Payments.Orchestrator.Client.Records;

namespace Payments.Failover.Core.Replication;

/// <summary>The warm standby's side: reads the active region's replicated journal page by page (point reads) and
/// applies it to this region's ledger (<see cref="JournalApplier"/>), recording in this region's etcd how many pages
/// of each source it has applied. In order, idempotent, restartable.</summary>
public sealed class JournalReplicator(Container journal, EtcdLedger ledger, EtcdConnection etcd, string prefix)
{
    public const int MaxPagesPerRound = 16;

    /// <summary>The key (under the key prefix) every transaction that copies the peer's journal or records also puts,
    /// so that the shipper of the region they were copied into can tell its own changes from copies
    /// (<see cref="JournalShipper"/>).</summary>
    public const string CopyMarker = "replication/copied";

    /// <summary>The local Cosmos-compatible server answers 500 for a missing document (see <see cref="JournalStore.TryReadAsync{T}"/>).</summary>
    public bool ServerErrorMeansMissing { get; init; }
    private readonly JournalApplier applier = new(ledger, EtcdBytes.AsPrefix(prefix) + CopyMarker, RegionEpochFence.KeyFor(prefix));

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
            revision = await ApplyRecordsAsync(source, number, revision, page.Records ?? [], cancellationToken);
            applied = number;
            AppliedSequence = page.Entries.Count > 0 ? page.Entries[^1].Sequence : AppliedSequence;
        }

        PagesBehind = head.Pages - applied;
        return rounds;
    }

    /// <summary>Most rounds of <see cref="ReplicateForAsync"/>: with its time budget, what bounds one standby tick.</summary>
    public const int MaxRoundsPerCall = 64;

    /// <summary>The warm standby's tick: rounds while each applied a full <see cref="MaxPagesPerRound"/> (more is
    /// waiting) and <paramref name="budget"/> is not spent, at most <see cref="MaxRoundsPerCall"/>. One round per tick
    /// applied at most 8 pages a second, and the active region ships a page for every round of changes (a few per
    /// payment at low load): under steady load the standby fell behind without bound, and a takeover then had all of it
    /// to apply before writing. Returns the pages applied.</summary>
    public async Task<int> ReplicateForAsync(string source, TimeSpan budget, TimeProvider time, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(time);
        var started = time.GetTimestamp();
        var pages = 0;
        for (var round = 1; round <= MaxRoundsPerCall; round++)
        {
            var applied = await ReplicateOnceAsync(source, cancellationToken);
            pages += applied;
            if (applied < MaxPagesPerRound || time.GetElapsedTime(started) >= budget)
            {
                break;
            }
        }

        return pages;
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
    /// at the source), and the checkpoint moved to page <paramref name="number"/>. Idempotent: applying a page again
    /// writes the same values. Returns the checkpoint's new revision.</summary>
    /// <remarks>Shipping reads what is stored, so a deletion at the source never arrives. The one a copy needs is
    /// derived here: a payment record that arrives finished takes its in-flight marker with it, as the source's outcome
    /// transaction did — else every payment ever made left a marker here, counted against its merchant's payments in
    /// flight after a takeover (429 for any merchant past the cap) and walked by every sweep; and a webhook endpoint's
    /// removal record deletes the endpoint (<see cref="WebhookEndpointRemovals"/>). A hold bar's copy is not copied: it
    /// bars the hold here (<see cref="EtcdLedger.ApplyReplicatedBarAsync"/>), and this region's expiry sweep removes it. The others need none:
    /// records archived and events trimmed at the source are archived and trimmed here by this region's own services,
    /// and a revoked API key is expired in place (a write), not deleted.
    /// <para>Every transaction compares the checkpoint with the revision this round last saw and moves it: the chart
    /// runs two replicators per region, and one that fell behind (conflicts, CPU) would otherwise write page n's records
    /// after the other had applied page n + 1's — a key revoked there valid again, a payment finished there pending
    /// again, for good (nothing applies n + 1 again). Each also puts <see cref="CopyMarker"/>, so that this
    /// region's shipper leaves these copies out of its own pages (<see cref="JournalShipper"/>): shipped back, a region
    /// catching up from its peer put its own records' old values over their new ones.</para></remarks>
    private async Task<long> ApplyRecordsAsync(
        string source, long number, long checkpointRevision, IReadOnlyList<RecordDocument> records, CancellationToken cancellationToken)
    {
        var root = EtcdBytes.AsPrefix(prefix);
        // The newest action on each key in the page (etcd refuses two writes of one key in a transaction); a null
        // value deletes.
        var latest = new Dictionary<string, (long Revision, Google.Protobuf.ByteString? Value)>(StringComparer.Ordinal);
        var bars = new List<Google.Protobuf.ByteString>();
        void Keep(string key, long revision, Google.Protobuf.ByteString? value)
        {
            if (!latest.TryGetValue(key, out var kept) || kept.Revision < revision || (kept.Revision == revision && value is null))
            {
                latest[key] = (revision, value);
            }
        }

        foreach (var record in records)
        {
            if (!IsShippedFamily(record.Key))
            {
                ReplicationMetrics.CountRefused(); // not fatal: one such record must not stop the standby
                continue;
            }

            var value = Google.Protobuf.ByteString.FromBase64(record.ValueBase64);
            if (record.Key.StartsWith(EtcdOptions.HoldBarsFamily, StringComparison.Ordinal))
            {
                bars.Add(value); // applied as a bar, not copied as it is (the key is the source's copy of its bar)
                continue;
            }

            Keep(record.Key, record.Revision, value);
            if (record.Key.StartsWith(EtcdOptions.PaymentsFamily, StringComparison.Ordinal)
                && PaymentRecordStore.FinishedMarker(record.Key[EtcdOptions.PaymentsFamily.Length..], value.Span) is { } marker)
            {
                Keep(EtcdOptions.PaymentsFamily + marker, record.Revision, null);
            }
            else if (record.Key.StartsWith(EtcdOptions.WebhookRemovalsFamily, StringComparison.Ordinal)
                && WebhookEndpointRemovals.EndpointKeyOf(value.Span) is { } removedEndpoint)
            {
                // The endpoint's deletion, at the revision that deleted it: a later re-creation under the same id
                // (a newer revision) still wins.
                Keep(removedEndpoint, record.Revision, null);
            }
        }

        await ApplyToLedgerAsync(latest, bars, (CheckpointKey(source), checkpointRevision), cancellationToken);

        // Two keys of each transaction are the checkpoint and the marker.
        var chunks = latest.OrderBy(entry => entry.Value.Revision).Chunk(EtcdLedger.MaxTxnOps - 2).ToArray();
        if (chunks.Length == 0)
        {
            return await WriteCheckpointAsync(source, number, checkpointRevision, [], cancellationToken);
        }

        for (var index = 0; index < chunks.Length; index++)
        {
            var writes = chunks[index].Select(entry => entry.Value.Value is { } value ? EtcdBytes.Put(root + entry.Key, value) : EtcdBytes.Delete(root + entry.Key))
                .Append(EtcdBytes.Put(root + CopyMarker, Google.Protobuf.ByteString.CopyFromUtf8(source)))
                .ToArray();
            // The checkpoint reaches the page with its last transaction; the ones before rewrite the page before it.
            checkpointRevision = await WriteCheckpointAsync(source, index == chunks.Length - 1 ? number : number - 1, checkpointRevision, writes, cancellationToken);
        }

        return checkpointRevision;
    }

    /// <summary>What of a page's records the ledger takes in, before the checkpoint moves (a replicator that dies in
    /// between applies the page again): an account's settings reach its ledger record (the journal applier keeps what
    /// it finds there), and a hold bar bars the hold here (a payment the source failed stays failed: its hold is refused).
    /// Settings compare <paramref name="checkpoint"/> as the records do: written by a replicator behind the other, an
    /// older page's overdraft limit or open state replaced a newer one, and nothing applied the newer page again (a
    /// failover review). A late bar needs no such guard: it only adds a bar, which the expiry sweep removes when due.</summary>
    private async Task ApplyToLedgerAsync(
        Dictionary<string, (long Revision, Google.Protobuf.ByteString? Value)> latest, List<Google.Protobuf.ByteString> bars,
        (string Key, long ModRevision) checkpoint, CancellationToken cancellationToken)
    {
        foreach (var (_, (_, value)) in latest.Where(entry => entry.Key.StartsWith(EtcdOptions.AccountSettingsFamily, StringComparison.Ordinal)))
        {
            if (value is not null)
            {
                await ledger.ApplyReplicatedSettingsAsync(value, cancellationToken, RegionEpochFence.KeyFor(prefix), checkpoint);
            }
        }

        foreach (var bar in bars)
        {
            await ledger.ApplyReplicatedBarAsync(bar, RegionEpochFence.KeyFor(prefix), cancellationToken);
        }
    }

    /// <summary>Whether <paramref name="key"/> (relative to the key prefix) is in a family regions ship. Records are
    /// written with this service's etcd rights, which reach region/, sweeper/ and replication/ too, and a page is only
    /// the peer's ledger's word (in Cosmos DB): a key outside what regions ship — the epoch mirror, a lock, a
    /// checkpoint — is no record of the peer's to copy.</summary>
    internal static bool IsShippedFamily(string key) =>
        EtcdOptions.ReplicatedRecordFamilies.Any(family => key.StartsWith(family, StringComparison.Ordinal) && key.Length > family.Length);

    private string CheckpointKey(string source) => EtcdBytes.AsPrefix(prefix) + "replication/" + source + "/pages";

    private async Task<(long Pages, long ModRevision)> ReadCheckpointAsync(string source, CancellationToken cancellationToken)
    {
        var response = await EtcdConnection.CallAsync(
            token => etcd.Kv.RangeAsync(new RangeRequest { Key = EtcdBytes.Key(CheckpointKey(source)) }, cancellationToken: token), cancellationToken);
        var kv = response.Kvs.FirstOrDefault();
        return kv is null ? (0, 0) : (long.Parse(kv.Value.ToStringUtf8(), NumberStyles.None, CultureInfo.InvariantCulture), kv.ModRevision);
    }

    /// <summary>Compare-and-swap: two replicators of one region never move the checkpoint backwards, and
    /// <paramref name="writes"/> land only while the checkpoint is where this replicator last saw it — and while this
    /// region holds no epoch (its mirror absent): a region that writes takes no copies (<see cref="JournalApplier"/>).</summary>
    private async Task<long> WriteCheckpointAsync(string source, long pages, long expectedRevision, RequestOp[] writes, CancellationToken cancellationToken)
    {
        var key = CheckpointKey(source);
        var request = new TxnRequest();
        request.Compare.Add(EtcdBytes.ModRevisionIs(key, expectedRevision));
        request.Compare.Add(EtcdBytes.ModRevisionIs(RegionEpochFence.KeyFor(prefix), 0));
        request.Success.Add(writes);
        request.Success.Add(EtcdBytes.Put(key, Google.Protobuf.ByteString.CopyFromUtf8(pages.ToString(CultureInfo.InvariantCulture))));
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
        if (!response.Succeeded)
        {
            var epoch = await EtcdConnection.CallAsync(
                token => etcd.Kv.RangeAsync(new RangeRequest { Key = EtcdBytes.Key(RegionEpochFence.KeyFor(prefix)), CountOnly = true }, cancellationToken: token), cancellationToken);
            throw epoch.Count > 0
                ? new Payments.Ledger.Contracts.LedgerUnavailableException("This region holds an epoch (it writes): it applies no other region's records.")
                : new InvalidOperationException($"Another replicator moved the checkpoint of {source}; this round stops (the pages it applied are idempotent).");
        }

        return response.Header.Revision;
    }
}

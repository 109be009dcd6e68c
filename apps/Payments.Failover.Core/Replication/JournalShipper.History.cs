using Microsoft.Extensions.Logging;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core;

namespace Payments.Failover.Core.Replication;

/// <summary>The head in Cosmos DB names revisions of this region's etcd. An etcd rebuilt, or restored from a snapshot
/// without moving its revisions past the head (<c>etcdutl snapshot restore --bump-revision</c>), counts from lower
/// revisions again: its new entries sit below the head, so they never shipped, sync writes counted as shipped at once
/// (their sequences below the head's) and the archiver took them for replicated (a failover review: the next loss of
/// the region lost everything it wrote since). Each round checks, at most once per <see cref="HistoryCheckInterval"/>
/// or whenever the head is past what this shipper last saw of etcd, that the head is within etcd's revisions; when it
/// is not, nothing counts as shipped (sync writes answer replication-pending, the archiver keeps every entry), the lag
/// grows from the moment it was found (the lag alert), and the shipper says what to do, until an operator restores
/// the region's etcd past the head (docs/runbooks/etcd-member-lost.md). After etcd did not answer, the head is checked
/// before anything counts as shipped again.</summary>
public sealed partial class JournalShipper
{
    /// <summary>How often a round reads etcd's revision to check that the head is within it (one linearizable read of
    /// one key; a restore under a running shipper is seen within this).</summary>
    public static readonly TimeSpan HistoryCheckInterval = TimeSpan.FromSeconds(1);

    /// <summary>How often the shipper says again that the head is beyond etcd's history.</summary>
    public static readonly TimeSpan HistoryResetLogInterval = TimeSpan.FromMinutes(1);

    private long historyCheckedAt = long.MinValue;
    private long etcdRevisionSeen;
    private DateTimeOffset? historyResetSince;
    private DateTimeOffset historyResetLoggedAt = DateTimeOffset.MinValue;

    /// <summary>The highest etcd revision the head names.</summary>
    internal static long RevisionOf(JournalHead head) =>
        Math.Max(Math.Max(head.LastJournalRevision, head.LastRecordRevision), head.LastSequence / JournalEntry.SequencePerRevision);

    /// <summary>A revision this shipper knows etcd has reached (read from its feeds, or a head it wrote from them): a
    /// head within it needs no read of its own until the check is due, so a busy shipper, whose head moves every
    /// round, does not read etcd's revision every round.</summary>
    private void SeenInEtcd(long revision)
    {
        long seen;
        do
        {
            seen = Interlocked.Read(ref etcdRevisionSeen);
        }
        while (revision > seen && Interlocked.CompareExchange(ref etcdRevisionSeen, revision, seen) != seen);
    }

    /// <summary>A round failed: the lag is at least the time since one last completed (<see cref="LagAtLeast"/>). After
    /// etcd did not answer (restored under a running shipper, it is away first): the next round checks the
    /// head against it before anything counts as shipped, and nothing does until then — a write committed in an etcd
    /// restored below the head had a sequence below the shipped one and was acknowledged at once.</summary>
    private void RoundFailed(Exception fault, long lastRoundAt)
    {
        LagAtLeast(time.GetElapsedTime(lastRoundAt));
        if (fault is Grpc.Core.RpcException or LedgerUnavailableException)
        {
            historyCheckedAt = long.MinValue;
            Interlocked.Exchange(ref etcdRevisionSeen, 0);
            lock (waiters)
            {
                Interlocked.Exchange(ref shippedSequence, -1);
            }
        }
    }

    /// <summary>Throws <see cref="EtcdHistoryResetException"/> when the head names revisions this etcd has not reached.</summary>
    private async Task EnsureHeadWithinHistoryAsync(JournalHead head, CancellationToken cancellationToken)
    {
        var headRevision = RevisionOf(head);
        var now = time.GetTimestamp();
        if (headRevision <= Interlocked.Read(ref etcdRevisionSeen) && historyCheckedAt != long.MinValue
            && time.GetElapsedTime(historyCheckedAt, now) < HistoryCheckInterval)
        {
            return;
        }

        var current = await new JournalReader(ledger).CurrentRevisionAsync(cancellationToken);
        historyCheckedAt = now;
        if (current >= headRevision)
        {
            Interlocked.Exchange(ref etcdRevisionSeen, current);
            if (historyResetSince is not null)
            {
                logger.LogWarning("Region {Region}: etcd's revisions ({Current}) reach the shipped head ({Head}) again; shipping resumes", region, current, headRevision);
                historyResetSince = null;
            }

            return;
        }

        lock (waiters)
        {
            Interlocked.Exchange(ref shippedSequence, -1); // nothing counts as shipped: not the sync writes, not the archiver's entries
        }

        var at = time.GetUtcNow();
        historyResetSince ??= at;
        Interlocked.Exchange(ref lagMilliseconds, (long)(at - historyResetSince.Value).TotalMilliseconds);
        Interlocked.Exchange(ref etcdRevisionSeen, current);
        throw new EtcdHistoryResetException(region, headRevision, current);
    }

    /// <summary>While rounds fail (Cosmos DB or etcd away, a head that does not read), the lag is at least how long since
    /// one last completed: the shipper cannot tell what is unshipped, and the gauge stood at its last value (often 0)
    /// through an outage of any length, so the lag alert never fired (a failover review).</summary>
    private void LagAtLeast(TimeSpan failingFor)
    {
        var failing = (long)failingFor.TotalMilliseconds;
        long current;
        do
        {
            current = Interlocked.Read(ref lagMilliseconds);
        }
        while (failing > current && Interlocked.CompareExchange(ref lagMilliseconds, failing, current) != current);
    }

    /// <summary>Logs a history reset as an error, once per <see cref="HistoryResetLogInterval"/> (each round finds it).</summary>
    private void LogHistoryReset(EtcdHistoryResetException reset)
    {
        var at = time.GetUtcNow();
        if (at - historyResetLoggedAt >= HistoryResetLogInterval)
        {
            historyResetLoggedAt = at;
            logger.LogError("Region {Region}: {Reason}", region, reset.Message);
        }
    }
}

/// <summary>The region's shipped head names etcd revisions its etcd has not reached: the etcd was rebuilt or restored
/// from a snapshot without moving its revisions past the head.</summary>
public sealed class EtcdHistoryResetException(string region, long headRevision, long etcdRevision)
    : InvalidOperationException(
        $"the journal head of {region} in Cosmos DB names etcd revision {headRevision}, but this region's etcd is at revision {etcdRevision}: "
        + "it was rebuilt or restored from a snapshot without --bump-revision. Nothing ships and no sync write is acknowledged until its "
        + "revisions pass the head: restore it again with etcdutl snapshot restore --bump-revision past the head and --mark-compacted "
        + "(docs/runbooks/etcd-member-lost.md)")
{
    public long HeadRevision => headRevision;

    public long EtcdRevision => etcdRevision;
}

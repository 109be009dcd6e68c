using Microsoft.Azure.Cosmos;
using Payments.Etcd;
using Payments.Ledger.Core;

namespace Payments.Failover.Core.Replication;

/// <summary>Whether everything a region's ledger holds is in its replicated journal (its head has reached the last
/// entry), and the API's records shipped beside it too: what a planned switchover waits for, after the region stopped
/// writing.</summary>
public sealed class ShippingProgress(Container journal, EtcdLedger ledger, TimeProvider time)
{
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(200);

    /// <summary>The region's key prefix, when its records under <see cref="EtcdOptions.ReplicatedRecordFamilies"/> ship
    /// with its journal: caught up then also means none changed after the head's last shipped revision (a switchover
    /// that waited for the journal alone could leave the last payment records behind).</summary>
    public string? RecordRoot { get; init; }

    /// <summary>The region's etcd, read for <see cref="RecordRoot"/>.</summary>
    public EtcdConnection? Etcd { get; init; }

    public async Task<bool> IsCaughtUpAsync(string region, CancellationToken cancellationToken)
    {
        var head = await JournalStore.TryReadAsync<JournalHead>(journal, JournalHead.IdFor(region), cancellationToken);
        if ((await new JournalReader(ledger).ReadAsync(head?.LastSequence ?? 0, EtcdLedger.MaxTxnOps, cancellationToken)).Count > 0)
        {
            return false;
        }

        foreach (var family in RecordRoot is null || Etcd is null ? [] : EtcdOptions.ReplicatedRecordFamilies)
        {
            var prefix = EtcdBytes.AsPrefix(RecordRoot!) + family;
            var newer = await EtcdConnection.CallAsync(token => Etcd!.Kv.RangeAsync(new Etcdserverpb.RangeRequest
            {
                Key = EtcdBytes.Key(prefix), RangeEnd = EtcdBytes.PrefixEnd(prefix), MinModRevision = (head?.LastRecordRevision ?? 0) + 1,
                KeysOnly = true, Limit = 1,
            }, cancellationToken: token), cancellationToken);
            if (newer.Kvs.Count > 0)
            {
                return false;
            }
        }

        return true;
    }

    public async Task WaitCaughtUpAsync(string region, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var started = time.GetTimestamp();
        while (!await IsCaughtUpAsync(region, cancellationToken))
        {
            if (time.GetElapsedTime(started) >= timeout)
            {
                throw new TimeoutException($"Region {region}'s journal was not fully shipped within {timeout.TotalSeconds} s.");
            }

            await Task.Delay(PollInterval, time, cancellationToken);
        }
    }
}

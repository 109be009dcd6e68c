using Microsoft.Azure.Cosmos;
using Payments.Ledger.Core;

namespace Payments.Failover.Core.Replication;

/// <summary>Whether everything a region's ledger holds is in its replicated journal (its head has reached the last
/// entry): what a planned switchover waits for, after the region stopped writing.</summary>
public sealed class ShippingProgress(Container journal, EtcdLedger ledger, TimeProvider time)
{
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(200);

    public async Task<bool> IsCaughtUpAsync(string region, CancellationToken cancellationToken)
    {
        var shipped = (await JournalStore.TryReadAsync<JournalHead>(journal, JournalHead.IdFor(region), cancellationToken))?.LastSequence ?? 0;
        return (await new JournalReader(ledger).ReadAsync(shipped, EtcdLedger.MaxTxnOps, cancellationToken)).Count == 0;
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

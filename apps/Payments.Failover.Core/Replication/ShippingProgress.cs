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
        var id = JournalHead.IdFor(region);
        long shipped;
        try
        {
            shipped = (await journal.ReadItemAsync<JournalHead>(id, new PartitionKey(id), cancellationToken: cancellationToken)).Resource.LastSequence;
        }
        catch (CosmosException exception) when (exception.StatusCode is System.Net.HttpStatusCode.NotFound or System.Net.HttpStatusCode.InternalServerError)
        {
            shipped = 0; // nothing shipped yet (the local server answers 500 for a missing item)
        }

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

using Payments.Failover.Core;
using Payments.Failover.Core.Replication;

namespace Payments.Failover;

/// <summary>Ticks the lease manager every <see cref="RegionLeaseOptions.RenewInterval"/>; each tick is bounded by
/// the interval, so a hung Cosmos or etcd call cannot hold up the next decision (the demotion deadline is enforced by
/// time and by the mirror's own lease regardless).</summary>
internal sealed class RegionLeaseService(
    RegionLeaseManager manager, JournalReplicator replicator, RegionLeaseOptions options, TimeProvider time, ILogger<RegionLeaseService> logger)
    : BackgroundService
{
    public DateTimeOffset? LastTickCompletedAt { get; private set; }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.RenewInterval, time);
        do
        {
            using var tickTimeout = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            tickTimeout.CancelAfter(options.RenewInterval);
            try
            {
                await manager.TickAsync(tickTimeout.Token);
                LastTickCompletedAt = time.GetUtcNow();
                if (manager.Role == RegionRole.Standby && manager.LastSeen?.ActiveRegion is { } source && source != options.Name)
                {
                    await ReplicateAsync(source, tickTimeout.Token);
                }
            }
            catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
            {
                logger.LogWarning("Region {Region}: a lease tick took longer than {Interval}; abandoned", options.Name, options.RenewInterval);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    /// <summary>The warm standby's round: apply what the active region shipped, for at most half a tick (the rest is
    /// left for the lease's own calls); faults only delay it to the next tick.</summary>
    private async Task ReplicateAsync(string source, CancellationToken cancellationToken)
    {
        try
        {
            await replicator.ReplicateForAsync(source, options.RenewInterval / 2, time, cancellationToken);
        }
        catch (Exception exception) when (exception is Microsoft.Azure.Cosmos.CosmosException or HttpRequestException or Grpc.Core.RpcException
                                          or Payments.Ledger.Contracts.LedgerUnavailableException or InvalidOperationException or InvalidDataException)
        {
            logger.LogWarning("Region {Region}: replicating {Source}'s journal failed ({Error}); next tick retries", options.Name, source, exception.Message);
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (manager.Role == RegionRole.Active)
        {
            // A clean stop of the active region's failover service: stop writing now rather than at the deadline.
            // The lease itself is left to expire (or to be taken over by a planned switchover).
            try
            {
                await manager.DemoteAsync(cancellationToken);
            }
            catch (ObjectDisposedException exception)
            {
                // The host disposed its services under this stop (the etcd connection is gone): best effort only —
                // the region already stopped writing, and the mirror's lease ends the epoch by its deadline.
                logger.LogWarning("Region {Region}: could not release the epoch mirror at stop ({Error}); its lease ends it", options.Name, exception.Message);
            }
        }
    }
}

using Payments.Failover.Core;
using Payments.Failover.Core.Replication;

namespace Payments.Failover;

/// <summary>Ticks the lease manager every <see cref="RegionLeaseOptions.RenewInterval"/>; each tick is bounded by
/// the interval, so a hung Cosmos or etcd call cannot hold up the next decision (the demotion deadline is enforced by
/// time and by the mirror's own lease regardless).</summary>
internal sealed class RegionLeaseService(
    RegionLeaseManager manager, JournalReplicator replicator, RegionLeaseOptions options, TimeProvider time, ILogger<RegionLeaseService> logger,
    CosmosSetup? cosmos = null)
    : BackgroundService
{
    public DateTimeOffset? LastTickCompletedAt { get; private set; }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (cosmos is not null)
        {
            // Before the first tick, not at start-up (CosmosSetup): an outage is waited out here, and said.
            await cosmos.Settings.WaitForContainersAsync(cosmos.Client, cosmos.Containers, time, (attempt, unreachable) => logger.LogWarning(
                "Region {Region}: the lease waits for Cosmos DB (check {Attempt} failed: {Reason})", options.Name, attempt, unreachable.Message), stoppingToken);
        }

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
            catch (Exception exception) when (exception is not OperationCanceledException)
            {
                // Out of the loop it would stop the host: a standby that can no longer take over, an active region whose
                // lease lapses. The next tick decides again; readiness follows LastTickCompletedAt.
                logger.LogError(exception, "Region {Region}: a lease tick failed; the next tick decides again", options.Name);
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
                                          or Payments.Ledger.Contracts.LedgerUnavailableException)
        {
            logger.LogWarning("Region {Region}: replicating {Source}'s journal failed ({Error}); next tick retries", options.Name, source, exception.Message);
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            // A page that does not decode (a newer version's format, a damaged document) fails every tick until it is
            // understood: said as an error, the lease's own work going on (it is not what failed).
            logger.LogError(exception, "Region {Region}: replicating {Source}'s journal failed; next tick retries", options.Name, source);
        }
    }

    /// <summary>The mirror is left to its deadline: the region runs more than one failover process, and deleting it
    /// at a stop (every rollout) paused the region's writes until another renewed it. Its deadline bounds it, and
    /// the other region may promote only after the lease, so nothing is safer for deleting it.</summary>
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (manager.Role == RegionRole.Active)
        {
            logger.LogInformation("Region {Region}: failover process stopping; its epoch mirror ends at {Deadline:O} unless another process renews it",
                options.Name, manager.WritableUntil);
        }
    }
}

/// <summary>The Cosmos DB account and containers the failover service needs, checked (and, with a key, created) by the
/// lease loop before its first tick — so before any region decides anything — rather than at start-up, which exited with
/// Cosmos DB away and came back under Kubernetes' growing back-off up to 5 minutes after Cosmos DB did (a review;
/// <see cref="Payments.Cosmos.CosmosSettings.WaitForContainersAsync"/>).</summary>
internal sealed record CosmosSetup(Microsoft.Azure.Cosmos.CosmosClient Client, Payments.Cosmos.CosmosSettings Settings, IReadOnlyList<string> Containers);

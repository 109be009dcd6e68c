using Payments.Cosmos;
using Payments.Etcd;
using Payments.Etcd.Regions;
using Payments.Failover.Core;
using Payments.Failover.Core.Replication;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core;

namespace Payments.Ledger.Replication;

/// <summary>Configuration section <c>Replication</c> (<c>Mode</c>: off, sync or async).</summary>
public sealed class ReplicationOptions
{
    public ReplicationMode Mode { get; set; } = ReplicationMode.Off;

    /// <summary>How long a sync write waits for its entries to be shipped before it answers 503 (committed, not yet
    /// acknowledged: the caller's retry with the same ids replays it and waits again).</summary>
    public TimeSpan SyncTimeout { get; set; } = TimeSpan.FromSeconds(5);

    public bool Enabled => Mode != ReplicationMode.Off;

    /// <summary>The longest <see cref="SyncTimeout"/> (the chart's bound too): a negative one waited for ever.</summary>
    public static readonly TimeSpan MaxSyncTimeout = TimeSpan.FromSeconds(60);

    public ReplicationOptions Validate() =>
        !Enum.IsDefined(Mode) ? throw new InvalidOperationException($"Replication:Mode is '{Mode}'; use off, sync or async.")
        : SyncTimeout <= TimeSpan.Zero || SyncTimeout > MaxSyncTimeout
            ? throw new InvalidOperationException($"Replication:SyncTimeout is {SyncTimeout}; use more than 0 and at most {MaxSyncTimeout}.")
            : this;
}

/// <summary>What a ledger write waits for before it is acknowledged (nothing unless the mode is sync).</summary>
/// <param name="writeDeadlinePassed">Whether the region's writable deadline has passed (null: no region). A write
/// committed before the deadline whose page shipped after it is not acknowledged: the other region may by then have
/// promoted and read this region's journal head for its catch-up, so the page can be one it never applies — an
/// acknowledged write lost, in the mode that promises none is (a review: a slow shipper, 5 s of sync wait against
/// 3 s between the deadline and the other region's promotion). Answered replication-pending instead, the caller's
/// retry with the same ids finds the write where it is.</param>
public sealed class ReplicationAcknowledger(ReplicationOptions options, JournalShipper? shipper, Func<bool>? writeDeadlinePassed = null)
{
    public Task WaitAsync(TransferOutcome outcome, CancellationToken cancellationToken) =>
        outcome is TransferOutcome.Applied applied ? WaitAsync(applied.Entry.Sequence, cancellationToken) : Task.CompletedTask;

    public Task WaitAsync(BatchOutcome outcome, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(outcome);
        var last = outcome.Transfers.OfType<TransferOutcome.Applied>().Select(applied => applied.Entry.Sequence).DefaultIfEmpty(-1).Max();
        return last < 0 ? Task.CompletedTask : WaitAsync(last, cancellationToken);
    }

    private async Task WaitAsync(long sequence, CancellationToken cancellationToken)
    {
        if (options.Mode != ReplicationMode.Sync || shipper is null)
        {
            return;
        }

        await shipper.WaitShippedAsync(sequence, options.SyncTimeout, cancellationToken);
        if (writeDeadlinePassed?.Invoke() == true)
        {
            throw new TimeoutException(
                "The write was committed here but shipped only after this region's write deadline, when the other region may already have taken over without it; retry with the same ids.");
        }
    }
}

/// <summary>Runs the region's journal shipper for the life of the ledger service, once its Cosmos DB account and journal
/// container are checked (<see cref="CosmosSettings.WaitForContainersAsync"/>): checked at start-up, the ledger exited
/// when Cosmos DB was away and crash-looped, and once every replica had cycled the region had no ledger — in async mode
/// too, whose writes never wait for Cosmos DB (a review). Meanwhile sync writes are answered replication-pending, as in
/// any Cosmos DB outage.</summary>
internal sealed class JournalShippingService(JournalShipper shipper, Func<CancellationToken, Task> ensureJournal) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await ensureJournal(stoppingToken);
        await shipper.RunAsync(stoppingToken);
    }
}

internal static class ReplicationRegistration
{
    /// <summary>With <c>Replication:Mode</c> sync or async: the Cosmos client, the journal container (created if
    /// missing, bounded), the shipper and its lag gauge.</summary>
    public static void AddJournalReplication(this WebApplicationBuilder builder, ReplicationOptions options, EtcdOptions etcd)
    {
        builder.Services.AddSingleton(options);
        if (!options.Enabled)
        {
            builder.Services.AddSingleton(new ReplicationAcknowledger(options, null));
            return;
        }

        var region = builder.Configuration["Region:Name"];
        if (string.IsNullOrWhiteSpace(region))
        {
            throw new InvalidOperationException("Replication:Mode needs Region:Name (replication is between the regions of a two-region deployment).");
        }

        var cosmos = builder.Configuration.GetSection(CosmosSettings.Section).Get<CosmosSettings>() ?? new CosmosSettings();
        var client = cosmos.CreateClient();
        // The container's handle needs no call; it is checked (and, with a key, created) by the shipping service.
        var journal = client.GetContainer(cosmos.Database, cosmos.JournalContainer);
        builder.Services.AddSingleton(client);
        builder.Services.AddSingleton(provider =>
        {
            var shipper = new JournalShipper(
                region, journal,
                // The service's own ledger: the shipper only reads its journal (the region fence guards writes only).
                provider.GetRequiredService<EtcdLedger>(),
                provider.GetRequiredService<TimeProvider>(), provider.GetRequiredService<ILoggerFactory>().CreateLogger<JournalShipper>())
            {
                // Beside the journal: the API's merchant key hashes and account owners, and the payment records, so
                // the other region knows the merchants, their accounts and their payments after a failover.
                // (Idempotency records are not shipped: a payment's id derives from its key, so a retry in the other
                // region still finds the same payment.)
                RecordPrefixes = EtcdOptions.ReplicatedRecordFamilies,
                RecordRoot = etcd.KeyPrefix,
                Etcd = provider.GetRequiredService<EtcdConnection>(),
            };
            ReplicationMetrics.ObserveLag(() => shipper.LagMilliseconds);
            return shipper;
        });
        builder.Services.AddSingleton(provider =>
        {
            var region = provider.GetRequiredService<RegionEpochWatcher>();
            return new ReplicationAcknowledger(options, provider.GetRequiredService<JournalShipper>(), () => region.WriteDeadlinePassed);
        });
        builder.Services.AddHostedService(provider =>
        {
            var logger = provider.GetRequiredService<ILogger<JournalShippingService>>();
            return new JournalShippingService(provider.GetRequiredService<JournalShipper>(), token => cosmos.WaitForContainersAsync(
                client, [cosmos.JournalContainer], provider.GetRequiredService<TimeProvider>(),
                (attempt, unreachable) => logger.LogWarning(
                    "Journal shipping waits for Cosmos DB (check {Attempt} failed: {Reason}); sync writes are answered replication-pending meanwhile",
                    attempt, unreachable.Message),
                token));
        });
    }
}

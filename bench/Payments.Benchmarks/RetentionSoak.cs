using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Etcdserverpb;
using Microsoft.Extensions.Logging.Abstractions;
using Payments.Domain;
using Payments.Etcd;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core;
using Payments.Ledger.Core.Invariants;
using Payments.Ledger.Core.Retention;
using Payments.Cosmos;
using Payments.Failover.Core.Archiving;
using Payments.LocalCluster;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Client.Records;

namespace Payments.Benchmarks;

/// <summary>Storage soak (ADR 0004): payments as the API and the saga make them — an Idempotency-Key record, a payment
/// record, a hold, then credit + post in one batch, the record made terminal and the key's response stored — on a
/// fresh 3-member cluster, with the journal archiver and the payment-record archiver (into the local Cosmos-compatible
/// server) running on short retentions, and idempotency records on a short lease; at every fifth of the run etcd is
/// compacted and defragmented (what the periodic compaction and <c>EtcdDefragmenter</c> do in production, forced so
/// the figures do not depend on when their timers fire) and the database size is read. The baseline runs the same
/// load without archiving, on its own cluster, in the same command.</summary>
/// <remarks>The archiver is told everything is replicated: replication gating is tested
/// (<c>JournalRetentionTests</c>); this measures what stays in etcd.</remarks>
public static class RetentionSoak
{
    public const int MaxPayments = 1_000_000;
    public const int MaxWorkers = 64;
    public const int Checkpoints = 5;
    public const int MaxRate = 10_000;
    private static readonly TimeSpan ProgressInterval = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan MaintenanceTimeout = TimeSpan.FromMinutes(2);

    /// <summary>The soak's retentions, days compressed into seconds: finished payment records (8 days in production)
    /// and Idempotency-Key records (24 h).</summary>
    private static readonly TimeSpan PaymentRecordsKeepFor = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan IdempotencyRetention = TimeSpan.FromSeconds(15);
    private const string Merchant = "soak-merchant";

    private sealed record Stores(EtcdLedger Ledger, PaymentRecordStore Records, IdempotencyStore Idempotency);

    private static readonly JournalRetentionOptions Retention = new()
    {
        ReplayWindow = TimeSpan.FromSeconds(20),
        MaxIssuedAhead = TimeSpan.FromSeconds(1),
        KeepFor = TimeSpan.FromSeconds(30),
        ArrivalDisorderBound = TimeSpan.FromSeconds(2), // one machine's clock; ten minutes would hold the whole soak
        Interval = TimeSpan.FromSeconds(1),
    };

    public sealed record Checkpoint(long Payments, double DbSizeMb, double DbInUseMb, long Keys);

    public static async Task<int> RunAsync(string[] args)
    {
        var payments = 50_000;
        var workers = 16;
        var baseline = true;
        var rate = 0;
        for (var index = 0; index < args.Length; index++)
        {
            switch (args[index])
            {
                case "--payments" when index + 1 < args.Length && int.TryParse(args[index + 1], CultureInfo.InvariantCulture, out var n) && n is >= Checkpoints and <= MaxPayments:
                    payments = n;
                    index++;
                    break;
                case "--workers" when index + 1 < args.Length && int.TryParse(args[index + 1], CultureInfo.InvariantCulture, out var w) && w is > 0 and <= MaxWorkers:
                    workers = w;
                    index++;
                    break;
                case "--rate" when index + 1 < args.Length && int.TryParse(args[index + 1], CultureInfo.InvariantCulture, out var r) && r is > 0 and <= MaxRate:
                    rate = r;
                    index++;
                    break;
                case "--no-baseline":
                    baseline = false;
                    break;
                default:
                    Console.Error.WriteLine($"Usage: retention-soak [--payments N ({Checkpoints}–{MaxPayments}, default 50000)] [--workers N (1–{MaxWorkers}, default 16)] [--rate N (payments/s, 1–{MaxRate}; default: as fast as etcd takes them)] [--no-baseline]");
                    return 2;
            }
        }

        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, eventArgs) =>
        {
            eventArgs.Cancel = true;
            stop.Cancel();
        };
        var archived = await SoakAsync("with archiving", payments, workers, rate, archive: true, stop.Token);
        var kept = baseline ? await SoakAsync("baseline, no archiving", payments, workers, rate, archive: false, stop.Token) : null;
        var growth = Growth(archived);
        Console.WriteLine(JsonSerializer.Serialize(new { archived, kept }));
        Console.WriteLine("RESULT " + JsonSerializer.Serialize(new
        {
            payments,
            rate = rate == 0 ? (int?)null : rate,
            firstCheckpoint = archived[0].Payments,
            dbInUseMbFirst = archived[0].DbInUseMb,
            dbInUseMbMax = archived.Max(point => point.DbInUseMb),
            growth = Math.Round(growth, 3),
            baselineGrowth = kept is null ? (double?)null : Math.Round(Growth(kept), 3),
            withinTwentyPercent = growth <= 0.2,
        }));
        return growth <= 0.2 ? 0 : 1;
    }

    /// <summary>How far the database grew above its size at the first checkpoint, at its largest after it.</summary>
    private static double Growth(IReadOnlyList<Checkpoint> checkpoints) => (checkpoints.Max(point => point.DbInUseMb) / checkpoints[0].DbInUseMb) - 1;

    /// <param name="rate">Payments started per second (0: as fast as the cluster takes them). What etcd holds is the
    /// last retention window's payments, so a fixed rate makes every checkpoint hold as many, and what is left to
    /// compare is growth with the count.</param>
    private static async Task<IReadOnlyList<Checkpoint>> SoakAsync(
        string name, int payments, int workers, int rate, bool archive, CancellationToken cancellationToken)
    {
        Console.WriteLine($"== {name}: {payments:N0} payments, {workers} workers, {(rate == 0 ? "unpaced" : $"{rate}/s")}, retention {Retention.KeepFor.TotalSeconds} s");
        await using var cluster = await LocalEtcdCluster.StartAsync(3, Console.WriteLine, cancellationToken);
        using var etcd = cluster.ConnectAsRoot();
        var ledger = new EtcdLedger(etcd, "/soak/ledger/", TimeProvider.System, NullLogger<EtcdLedger>.Instance, retention: Retention);
        var stores = new Stores(ledger, new PaymentRecordStore(etcd, "/soak/payments/"),
            new IdempotencyStore(etcd, "/soak/idempotency/", TimeProvider.System, archive ? IdempotencyRetention : null));
        var pairs = await OpenAsync(ledger, workers, cancellationToken);
        using var stopArchiver = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var archiving = new ArchiveLoop(new JournalArchiver(ledger, () => long.MaxValue, "soak", NullLogger<JournalArchiver>.Instance));
        await using var cosmos = archive ? await LocalCosmosServer.StartAsync(cancellationToken) : null;
        using var cosmosClient = cosmos is null ? null : CosmosSettingsFor(cosmos).CreateClient();
        var archiver = archive
            ? Task.WhenAll(archiving.RunAsync(stopArchiver.Token), ArchiveRecordsAsync(stores.Records, cosmos!, cosmosClient!, stopArchiver.Token))
            : Task.CompletedTask;

        var paying = new PacedLoad(payments, rate);
        var clock = paying.Clock;
        var load = paying.RunAsync(workers, (worker, payment) => PayAsync(stores, pairs[worker], payment, cancellationToken), cancellationToken);

        var checkpoints = new List<Checkpoint>();
        var lastProgress = TimeSpan.Zero;
        while (checkpoints.Count < Checkpoints)
        {
            var due = (long)payments * (checkpoints.Count + 1) / Checkpoints;
            if (paying.Done >= due)
            {
                checkpoints.Add(await MeasureAsync(etcd, cluster.Members.Count, due, cancellationToken));
                Console.WriteLine($"  checkpoint {checkpoints[^1]}");
                continue;
            }

            if (load.IsFaulted)
            {
                await load; // surfaces the failure
            }

            await Task.WhenAny(load, Task.Delay(TimeSpan.FromMilliseconds(200), cancellationToken));
            if (clock.Elapsed - lastProgress >= ProgressInterval)
            {
                lastProgress = clock.Elapsed;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {clock.Elapsed.TotalSeconds,6:F0} s  {paying.Done,8:N0} payments  {paying.Done / clock.Elapsed.TotalSeconds,6:F0}/s  {archiving}"));
            }
        }

        await load;
        await stopArchiver.CancelAsync();
        await archiver;
        var (_, checks) = await LedgerInvariants.CheckAsync(ledger, cancellationToken);
        var broken = checks.Where(check => !check.Holds).ToArray();
        var creditors = await Task.WhenAll(pairs.Select(pair => ledger.GetAccountAsync(pair.Creditor, cancellationToken)));
        if (broken.Length > 0 || creditors.Sum(account => account!.BalanceMinor) != payments)
        {
            throw new InvalidOperationException($"{name}: the ledger is wrong after the soak: {string.Join("; ", broken.Select(check => check.Name + ": " + check.Detail))}");
        }

        Console.WriteLine($"  invariants hold; creditors received {payments:N0} minor units as expected");
        return checkpoints;
    }

    private static async Task<(AccountId Debtor, AccountId Creditor)[]> OpenAsync(EtcdLedger ledger, int workers, CancellationToken cancellationToken)
    {
        var pairs = Enumerable.Range(0, workers).Select(worker => (AccountId.Parse($"soak-d-{worker}"), AccountId.Parse($"soak-c-{worker}"))).ToArray();
        foreach (var (debtor, creditor) in pairs)
        {
            await ledger.OpenAccountAsync(debtor, Currency.Usd, 0, cancellationToken);
            await ledger.OpenAccountAsync(creditor, Currency.Usd, 0, cancellationToken);
            var funding = new TransferRequest.Single(TransferId.Parse($"fund-{debtor}"), AccountId.ExternalFunding(Currency.Usd), debtor, new Money(MaxPayments, Currency.Usd))
            {
                IssuedAt = DateTimeOffset.UtcNow,
            };
            Require(await ledger.TransferAsync(funding, cancellationToken));
        }

        return pairs;
    }

    /// <summary>Payments 1..n from a number of workers, paced to <c>rate</c> per second when it is not 0: payment k
    /// starts k / rate seconds in (never earlier; later when the cluster falls behind).</summary>
    private sealed class PacedLoad(int payments, int rate)
    {
        private long done;
        private long next;

        public Stopwatch Clock { get; } = Stopwatch.StartNew();

        public long Done => Interlocked.Read(ref done);

        public Task RunAsync(int workers, Func<int, long, Task> pay, CancellationToken cancellationToken) =>
            Task.WhenAll(Enumerable.Range(0, workers).Select(worker => Task.Run(async () =>
            {
                for (var payment = Interlocked.Increment(ref next); payment <= payments; payment = Interlocked.Increment(ref next))
                {
                    var wait = rate == 0 ? TimeSpan.Zero : TimeSpan.FromSeconds((payment - 1) / (double)rate) - Clock.Elapsed;
                    if (wait > TimeSpan.Zero)
                    {
                        await Task.Delay(wait, cancellationToken);
                    }

                    await pay(worker, payment);
                    Interlocked.Increment(ref done);
                }
            }, cancellationToken)));
    }

    /// <summary>The payment-record archiver's passes, as the failover service runs them, into the local server.</summary>
    private static async Task ArchiveRecordsAsync(PaymentRecordStore records, LocalCosmosServer cosmos, Microsoft.Azure.Cosmos.CosmosClient client, CancellationToken stop)
    {
        var settings = CosmosSettingsFor(cosmos);
        var container = await CosmosSettings.EnsureContainerAsync(client, settings.Database, settings.ArchiveContainer, stop);
        var archiver = new PaymentArchiver(records, new RecordArchive(container, settings.ServerErrorMeansMissing), TimeProvider.System,
            PaymentRecordsKeepFor, NullLogger.Instance);
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await archiver.PassAsync(stop);
                await Task.Delay(TimeSpan.FromSeconds(1), stop);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Grpc.Core.RpcException)
            {
                // a checkpoint's defragmentation stalled etcd: the next pass goes on from its cursor
            }
        }
    }

    private static CosmosSettings CosmosSettingsFor(LocalCosmosServer cosmos) => new()
    {
        Endpoint = cosmos.Endpoint,
        Key = LocalCosmosServer.Key,
        LimitToEndpoint = true,
        AcceptAnyServerCertificate = true, // the local server's self-signed certificate: a benchmark on this machine
    };

    /// <summary>One payment, retried with the same ids when a store gave up (as the API's clients and the saga's steps
    /// are): the load the checkpoints' defragmentation stalls must not end the soak.</summary>
    private static async Task PayAsync(Stores stores, (AccountId Debtor, AccountId Creditor) pair, long payment, CancellationToken cancellationToken)
    {
        const int MaxAttempts = 5;
        var issued = DateTimeOffset.UtcNow;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await PayOnceAsync(stores, pair, payment, issued, cancellationToken);
                return;
            }
            catch (Exception exception) when (exception is LedgerUnavailableException or Grpc.Core.RpcException && attempt < MaxAttempts)
            {
                // same ids: whatever the failed attempt applied is replayed, never applied twice
            }
        }
    }

    /// <summary>One payment of 1 minor unit, as the API and the saga make it: the key claimed and the record written,
    /// hold to in-transit, credit and post together, the record made terminal, the key's response stored.</summary>
    private static async Task PayOnceAsync(
        Stores stores, (AccountId Debtor, AccountId Creditor) pair, long payment, DateTimeOffset issued, CancellationToken cancellationToken)
    {
        var ledger = stores.Ledger;
        var paymentId = $"pay_{payment:x24}";
        // A retry finds its own claim in progress: the soak is the only client of its keys.
        var claim = (await stores.Idempotency.BeginAsync(Merchant, IdempotencyKey.Parse($"soak-{payment}"), "soak", cancellationToken)
            as IdempotencyBegin.Started)?.Claim;
        var order = new PaymentOrder(paymentId, Merchant, pair.Debtor.Value, pair.Creditor.Value, 1, Currency.Usd.Code, null);
        await stores.Records.CreateAsync(PaymentRecord.Accepted(order, issued), cancellationToken);
        var one = new Money(1, Currency.Usd);
        var hold = TransferId.Parse($"pay-{payment}-hold");
        Require(await ledger.TransferAsync(
            new TransferRequest.Pending(hold, pair.Debtor, AccountId.InTransit(Currency.Usd), one, TimeSpan.FromSeconds(15)) { IssuedAt = issued }, cancellationToken));
        var settle = await ledger.ApplyBatchAsync(
            [
                new TransferRequest.Single(TransferId.Parse($"pay-{payment}-credit"), AccountId.InTransit(Currency.Usd), pair.Creditor, one) { IssuedAt = issued },
                new TransferRequest.PostPending(TransferId.Parse($"pay-{payment}-post"), hold) { IssuedAt = issued },
            ],
            cancellationToken);
        if (!settle.Succeeded)
        {
            throw new InvalidOperationException($"Payment {payment} did not settle: {settle.Error}");
        }

        await stores.Records.RecordOutcomeAsync(paymentId, PaymentOutcome.Completed(), DateTimeOffset.UtcNow, cancellationToken);
        if (claim is not null)
        {
            await stores.Idempotency.CompleteAsync(claim, 202, $"{{\"paymentId\":\"{paymentId}\",\"status\":\"pending\"}}", "application/json", cancellationToken);
        }
    }

    private static void Require(TransferOutcome outcome)
    {
        if (outcome is TransferOutcome.Failed failed)
        {
            throw new InvalidOperationException($"Transfer {failed.Id} failed: {failed.Error}");
        }
    }

    /// <summary>Defragmenting a large file can outlast the HTTP/2 connection (the member answers a long call's keepalive
    /// pings with GOAWAY): both calls are idempotent, so one more try on a fresh connection.</summary>
    private static async Task<T> AgainOnceAsync<T>(Func<Task<T>> call)
    {
        try
        {
            return await call();
        }
        catch (Grpc.Core.RpcException exception) when (exception.StatusCode is Grpc.Core.StatusCode.ResourceExhausted or Grpc.Core.StatusCode.Unavailable)
        {
            return await call();
        }
    }

    /// <summary>Compacts at the current revision, defragments each member, and reads the sizes (largest member).</summary>
    private static async Task<Checkpoint> MeasureAsync(EtcdConnection etcd, int members, long payments, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(MaintenanceTimeout);
        var count = await EtcdConnection.CallAsync(
            token => etcd.Kv.RangeAsync(new RangeRequest { Key = EtcdBytes.Key("/soak/"), RangeEnd = EtcdBytes.PrefixEnd("/soak/"), CountOnly = true }, cancellationToken: token),
            timeout.Token);
        // Compaction and defragmentation outlast the connection's default 2 s call deadline: they carry their own.
        var deadline = DateTime.UtcNow + MaintenanceTimeout;
        await etcd.Kv.CompactAsync(new CompactionRequest { Revision = count.Header.Revision, Physical = true }, deadline: deadline, cancellationToken: timeout.Token);
        var size = 0L;
        var inUse = 0L;
        for (var member = 0; member < members; member++)
        {
            var maintenance = etcd.MemberMaintenance(member);
            await AgainOnceAsync(() => maintenance.DefragmentAsync(new DefragmentRequest(), deadline: deadline, cancellationToken: timeout.Token).ResponseAsync);
            var status = await AgainOnceAsync(() => maintenance.StatusAsync(new StatusRequest(), deadline: deadline, cancellationToken: timeout.Token).ResponseAsync);
            size = Math.Max(size, status.DbSize);
            inUse = Math.Max(inUse, status.DbSizeInUse);
        }

        return new Checkpoint(payments, Math.Round(size / 1048576.0, 2), Math.Round(inUse / 1048576.0, 2), count.Count);
    }

    /// <summary>The archiver's passes, with what it did and what last stopped or failed it, for the progress lines.</summary>
    private sealed class ArchiveLoop(JournalArchiver archiver)
    {
        private long archived;
        private string? lastError;

        public async Task RunAsync(CancellationToken cancellationToken)
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                try
                {
                    Interlocked.Add(ref archived, await archiver.ArchiveOnceAsync(cancellationToken));
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception exception) when (exception is LedgerUnavailableException or Grpc.Core.RpcException or OperationCanceledException or FencedOffException)
                {
                    lastError = $"{exception.GetType().Name}: {exception.Message}";
                }

                try
                {
                    await Task.Delay(Retention.Interval, cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }

        public override string ToString() =>
            $"archived {Interlocked.Read(ref archived):N0}{(archiver.LastStop is { } stop ? $"; waits: {stop}" : string.Empty)}{(lastError is { } error ? $"; last error: {error}" : string.Empty)}";
    }
}

using System.Diagnostics;
using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;
using Payments.Domain;
using Payments.Etcd;
using Payments.Etcd.Maintenance;
using Payments.Ledger.Contracts;
using Payments.LocalCluster;
using Payments.Testing;
using Xunit.Abstractions;

namespace Payments.Ledger.IntegrationTests;

/// <summary>Storage stays bounded: a cluster with a small quota takes twice its quota in writes — the churn
/// of workflow state and ledger records — without ever refusing one, because periodic compaction frees old revisions
/// and the defragmenter gives the pages back, one member at a time (before: nothing compacted, and etcd stopped every
/// write at its quota with NOSPACE).</summary>
public sealed class BoundedStorageTests(ITestOutputHelper output)
{
    /// <summary>The smallest quota the chart allows. A 64 MiB quota was hit in CI: with every suite running on two
    /// cores, etcd's leader changed often enough that compaction (run by the leader, restarted with each new one)
    /// lagged behind the writes.</summary>
    private const long QuotaBytes = 128L * 1024 * 1024;
    private const long WrittenTargetBytes = QuotaBytes * 2;
    // Large values, few puts: the churn's cost is etcd's per-request sync, and CI's two shared cores made 32k puts of
    // 8 KiB outlast the test's bound once.
    private const int ValueBytes = 32 * 1024;
    private const int ChurnedKeys = 256;
    private const int Writers = 8;

    /// <summary>Paced below what two cores sustain, so the run measures compaction, not etcd falling behind.</summary>
    private const long BytesPerSecond = 4L * 1024 * 1024;

    private static readonly TimeSpan TestTimeout = TimeSpan.FromMinutes(8);

    /// <summary>Longer than the maintenance lock's lease, which ends a lost release.</summary>
    private static readonly TimeSpan FinalPassBound = TimeSpan.FromSeconds(45);
    private static readonly DefragPolicy Policy = new(TimeSpan.FromSeconds(2), 16L * 1024 * 1024, 0.5, QuotaBytes);

    [Fact]
    public async Task TwiceItsQuotaInWrites_AreNeverRefused_AndTheDatabaseStaysUnderItsQuota()
    {
        using var timeout = new CancellationTokenSource(TestTimeout);
        await using var cluster = await LocalEtcdCluster.StartAsync(3, output.WriteLine, timeout.Token, new EtcdStorage(QuotaBytes, CompactionRetention: "5s"));
        using var etcd = cluster.ConnectAsRoot();
        var defragmenter = new EtcdDefragmenter(etcd, "/soak/locks/etcd-maintenance", Policy, NullLogger<EtcdDefragmenter>.Instance);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
        var maintenance = defragmenter.RunAsync(TimeProvider.System, stop.Token);
        var largest = 0L;
        var sampler = SampleLargestAsync(etcd, size => largest = Math.Max(largest, size), stop.Token);

        var written = await ChurnAsync(etcd, timeout.Token);
        var ledger = new Ledger.Core.EtcdLedger(etcd, "/soak/ledger/", TimeProvider.System, NullLogger<Ledger.Core.EtcdLedger>.Instance);
        await LedgerWorkAsync(ledger, timeout.Token); // the ledger still writes after the churn
        await stop.CancelAsync();
        await Task.WhenAll(maintenance, sampler);
        var last = await FinalPassAsync(defragmenter, timeout.Token);

        output.WriteLine($"written {written / (1 << 20)} MiB, largest member file {largest / (1 << 20)} MiB, quota {QuotaBytes / (1 << 20)} MiB, last pass {last}");
        Assert.True(written >= WrittenTargetBytes, $"only {written} bytes written");
        Assert.InRange(largest, 1, QuotaBytes - 1);
        Assert.NotNull(last);
        Assert.InRange(last.LargestDbSizeBytes, 1, (long)(QuotaBytes * DefragPolicy.DisarmBelowQuotaFraction));
        await LedgerAssert.InvariantsHoldAsync(ledger, timeout.Token);
    }

    /// <summary>Rewrites a fixed set of keys (as the workflow engine rewrites its state) at a paced rate until
    /// <see cref="WrittenTargetBytes"/> went in; every put must succeed (a NOSPACE would throw ResourceExhausted).</summary>
    private static async Task<long> ChurnAsync(EtcdConnection etcd, CancellationToken cancellationToken)
    {
        var value = ByteString.CopyFrom(new byte[ValueBytes]);
        var written = 0L;
        var clock = Stopwatch.StartNew();
        await Parallel.ForEachAsync(Enumerable.Range(0, Writers), cancellationToken, async (writer, token) =>
        {
            for (var put = 0L; Interlocked.Read(ref written) < WrittenTargetBytes; put++)
            {
                var request = new PutRequest { Key = EtcdBytes.Key($"/soak/churn/{((put * Writers) + writer) % ChurnedKeys:D4}"), Value = value };
                await PutAsync(etcd, request, token);
                var total = Interlocked.Add(ref written, ValueBytes);
                var due = TimeSpan.FromSeconds(total / (double)BytesPerSecond) - clock.Elapsed;
                if (due > TimeSpan.Zero)
                {
                    await Task.Delay(due, token); // pacing the load, not waiting for state
                }
            }
        });
        return written;
    }

    /// <summary>One more maintenance pass once the loop has stopped. A pass returns null while another holds the lock —
    /// here the stopped loop's lease, if its release did not reach etcd — so ask again (bounded) until it runs with
    /// every member answering.</summary>
    private static async Task<EtcdDefragmenter.Pass?> FinalPassAsync(EtcdDefragmenter defragmenter, CancellationToken cancellationToken)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            // A pass also defragments nobody when a member did not answer in time (CI's busy cores): ask again.
            var pass = await defragmenter.RunOnceAsync(cancellationToken);
            if (pass is { Members: 3 } || waited.Elapsed > FinalPassBound)
            {
                return pass;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken); // polling for the lock, bounded above
        }
    }

    /// <summary>A put as a client makes it: retried (bounded) when etcd timed out or lost its leader on CI's busy
    /// cores (a put is idempotent here), never when etcd refused it for space — that is what this test is about.</summary>
    private static async Task PutAsync(EtcdConnection etcd, PutRequest request, CancellationToken cancellationToken)
    {
        const int MaxAttempts = 10;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await EtcdConnection.CallAsync(call => etcd.Kv.PutAsync(request, cancellationToken: call), cancellationToken);
                return;
            }
            catch (RpcException exception) when (exception.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded && attempt < MaxAttempts)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(100 * attempt), cancellationToken); // back-off between attempts
            }
        }
    }

    private static async Task LedgerWorkAsync(Ledger.Core.EtcdLedger ledger, CancellationToken cancellationToken)
    {
        var (alice, bob) = (AccountId.Parse("soak-alice"), AccountId.Parse("soak-bob"));
        await ledger.OpenAccountAsync(alice, Currency.Eur, 0, cancellationToken);
        await ledger.OpenAccountAsync(bob, Currency.Eur, 0, cancellationToken);
        var funding = new TransferRequest.Single(TransferId.Parse("soak-fund"), AccountId.ExternalFunding(Currency.Eur), alice, new Money(1_000_000, Currency.Eur))
        {
            IssuedAt = DateTimeOffset.UtcNow,
        };
        Assert.IsType<TransferOutcome.Applied>(await ledger.TransferAsync(funding, cancellationToken));
        for (var index = 0; index < 200; index++)
        {
            var (from, to) = index % 2 == 0 ? (alice, bob) : (bob, alice);
            var transfer = new TransferRequest.Single(TransferId.Parse($"soak-{index}"), from, to, new Money(10, Currency.Eur));
            Assert.IsType<TransferOutcome.Applied>(await ledger.TransferAsync(transfer, cancellationToken));
        }
    }

    /// <summary>Every member's file size, sampled each second (a member that is defragmenting may not answer: skipped).</summary>
    private static async Task SampleLargestAsync(EtcdConnection etcd, Action<long> observe, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            for (var member = 0; member < etcd.MemberCount; member++)
            {
                try
                {
                    var status = await etcd.MemberMaintenance(member).StatusAsync(
                        new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(2), cancellationToken: cancellationToken);
                    observe(status.DbSize);
                }
                catch (RpcException)
                {
                    // busy defragmenting; the next sample sees it
                }
            }

            await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }
}

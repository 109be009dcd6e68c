using Payments.Ledger.IntegrationTests.Infrastructure;
using Payments.Testing;
using Xunit.Abstractions;

namespace Payments.Ledger.IntegrationTests;

[Collection(EtcdCollection.Name)]
public sealed class LedgerConcurrencyTests(EtcdClusterFixture etcd, ITestOutputHelper output)
{
    public const int Workers = 32;

    /// <summary>Transfers applied before the run stops: enough to have exercised every path the test claims.</summary>
    public const int TargetApplied = 600;

    /// <summary>Longest run: on a loaded CI machine reaching <see cref="TargetApplied"/> takes longer, not differently.
    /// Generous (about 4 transfers a second would do), so that the coverage asserted below is never a speed floor: a
    /// 60 s bound asked for 8 a second.</summary>
    public static readonly TimeSpan MaxRunTime = TimeSpan.FromMinutes(2.5);
    public static readonly TimeSpan TestTimeout = TimeSpan.FromMinutes(4);

    [Fact]
    public async Task RandomTransfers_FromManyWorkers_KeepEveryInvariant()
    {
        using var timeout = new CancellationTokenSource(TestTimeout);
        var ledger = etcd.NewLedger();
        var workload = new RandomWorkload(ledger, seed: 20261129);
        await workload.SetUpAsync(timeout.Token);

        // Until enough has happened, not for a fixed time: the assertions below are about coverage, never speed.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await workload.RunAsync(Workers, () => workload.Applied.Count < TargetApplied && clock.Elapsed < MaxRunTime, timeout.Token);
        await workload.ResolveUnknownAsync(timeout.Token);

        var report = await LedgerAssert.InvariantsHoldAsync(ledger, timeout.Token);
        workload.AssertJournalMatches(report);
        output.WriteLine(workload.Summary());
        // The run must have exercised the paths it claims to: money moved, holds resolved, funds ran short, retries replayed.
        Assert.True(workload.Applied.Count > 500, workload.Summary());
        Assert.True(workload.Replays > 0, workload.Summary());
        Assert.True(workload.FailuresByCode.ContainsKey("insufficient-funds"), workload.Summary());
        Assert.Contains(report.Journal, entry => entry.Kind == Payments.Ledger.Contracts.TransferKind.PostPending);
        Assert.Contains(report.Journal, entry => entry.Kind == Payments.Ledger.Contracts.TransferKind.VoidPending);
    }
}

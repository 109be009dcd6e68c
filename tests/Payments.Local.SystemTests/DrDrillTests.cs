using Payments.Local.Hosting;
using Xunit.Abstractions;

namespace Payments.Local.SystemTests;

/// <summary>The disaster-recovery drill (ADR 0003), smaller than the benchmark's: region A killed entirely under load,
/// clients retry in region B. Figures are printed, not asserted (RTO is a measurement: `-- dr-drill` reports it); what
/// is asserted is what must always hold: nothing acknowledged is lost in sync mode, every payment ends terminal in B,
/// each amount moved once, the ledger's invariants hold in B.</summary>
[Collection(LocalSystemCollection.Name)]
public sealed class DrDrillTests(ITestOutputHelper output)
{
    public static readonly TimeSpan TestTimeout = TimeSpan.FromMinutes(12);

    [Fact]
    public async Task RegionLostUnderLoad_NothingAcknowledgedIsLost_AndEveryPaymentEndsOnceInTheOtherRegion()
    {
        using var timeout = new CancellationTokenSource(TestTimeout);
        var result = await DrDrill.RunAsync(payments: 60, clients: 6, output.WriteLine, timeout.Token);

        output.WriteLine($"RTO {result.RtoSeconds} s, RPO (sync) {result.RpoPaymentsLostSync}, async lag p99 {result.AsyncLagP99Ms} ms, " +
            $"{result.PaymentsChecked} payments checked, {result.AcknowledgedCompletedInA} acknowledged completed in A before the loss");
        foreach (var problem in result.Problems)
        {
            output.WriteLine("PROBLEM " + problem); // whole: the assertion's message cuts each one short
        }

        Assert.Empty(result.Problems);
        Assert.Equal(0, result.RpoPaymentsLostSync);
        Assert.Equal(60, result.PaymentsChecked);
        Assert.True(result.AcknowledgedCompletedInA > 0, "the loss came before any payment completed in A: the drill checked no RPO");
    }
}

using Payments.Local.Hosting.Chaos;
using Xunit.Abstractions;

namespace Payments.Local.SystemTests;

/// <summary>The fault campaign in the test command (the benchmark program runs it longer: <c>-- chaos</c>): 90 s of
/// steady payments from 8 clients with a fault every 5 s among every process of the system — and afterwards nothing is
/// stuck, no status lies, no balance is off, no key names a second payment, the ledger's invariants hold, and every
/// finished payment's final event reached its merchant's webhook endpoint.</summary>
[Collection(LocalSystemCollection.Name)]
public sealed class FaultCampaignTests(ITestOutputHelper output)
{
    public static readonly TimeSpan Duration = TimeSpan.FromSeconds(90);
    public static readonly TimeSpan FaultEvery = TimeSpan.FromSeconds(5);
    public static readonly TimeSpan TestTimeout = Duration + FaultCampaign.SettleBound + TimeSpan.FromMinutes(4);

    [Fact]
    public async Task NinetySecondsOfFaults_LeaveNoPaymentStuck_NoStatusLying_AndEveryBalanceRight()
    {
        using var timeout = new CancellationTokenSource(TestTimeout);

        var result = await FaultCampaign.RunAsync(Duration, clients: 8, FaultEvery, seed: 10, output.WriteLine, timeout.Token);

        output.WriteLine(result.ToString());
        Assert.True(result.Faults >= 15, $"only {result.Faults} faults injected");
        Assert.True(result.Payments >= 100, $"only {result.Payments} payments");
        Assert.True(result.Clean, "Violations: " + string.Join("; ", result.Problems));
        Assert.Equal(0, result.Stuck);
        Assert.Equal(0, result.StatusMismatches);
        Assert.Equal(0, result.BalanceMismatches);
        Assert.Equal(0, result.IdempotencyViolations);
        Assert.Equal(0, result.InvariantViolations);
        Assert.Equal(0, result.WebhooksMissing);
    }
}

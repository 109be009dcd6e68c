using Microsoft.Extensions.Time.Testing;
using Payments.Api.Limits;

namespace Payments.Api.FunctionalTests;

/// <summary>Issue 14: a merchant's payments in flight are counted (an etcd read that visits every marker deleted since
/// the last compaction) once per budget, not once per payment; the cap still answers from a count.</summary>
public sealed class InFlightEstimatesTests
{
    private const int Cap = 1_000;

    [Fact]
    public void AfterACount_AReplicaAdmitsItsBudgetOnEstimates_ThenCountsAgain()
    {
        var time = new FakeTimeProvider();
        var estimates = new InFlightEstimates(time, replicas: 2);
        Assert.Null(estimates.TryEstimate("m1", Cap)); // never counted

        estimates.Counted("m1", 10, Cap);
        for (var admitted = 1; admitted <= InFlightEstimates.MaxBudget; admitted++)
        {
            Assert.Equal(10 + admitted, estimates.TryEstimate("m1", Cap)); // the counting payment and those since
        }

        Assert.Null(estimates.TryEstimate("m1", Cap)); // the budget is spent
        Assert.Null(estimates.TryEstimate("m2", Cap)); // another merchant has its own
    }

    [Fact]
    public void ACount_StandsInForAtMostMaxAge()
    {
        var time = new FakeTimeProvider();
        var estimates = new InFlightEstimates(time, replicas: 1);
        estimates.Counted("m1", 0, Cap);
        time.Advance(InFlightEstimates.MaxAge - TimeSpan.FromMilliseconds(1));
        Assert.Equal(1, estimates.TryEstimate("m1", Cap));
        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Null(estimates.TryEstimate("m1", Cap));
    }

    [Theory]
    [InlineData(2, 1)]
    [InlineData(3, 1)]
    [InlineData(1_000, 2)]
    [InlineData(1_000, 5)]
    public void OneReplica_NeverAdmitsPastTheCap_AndCountsNearItAtEveryPayment(int cap, int replicas)
    {
        var estimates = new InFlightEstimates(new FakeTimeProvider(), replicas);
        var (inFlight, counts, refused) = (0L, 0, 0);
        for (var payment = 0; payment < cap + 50; payment++)
        {
            var known = estimates.TryEstimate("m1", cap);
            if (known is null)
            {
                counts++;
                known = inFlight; // what etcd's count answers
                estimates.Counted("m1", inFlight, cap);
            }

            if (known >= cap)
            {
                refused++;
                continue;
            }

            inFlight++;
            Assert.True(inFlight <= cap, $"{inFlight} in flight past the cap of {cap}");
        }

        Assert.Equal(cap, inFlight);
        Assert.Equal(50, refused);
        // Far from the cap a count per budget; near it (less room than two budgets per replica) one per payment.
        Assert.True(counts < cap / 2 + 2 * replicas * InFlightEstimates.MaxBudget + 50,
            $"{counts} counts for {cap + 50} payments");
        if (cap >= 1_000)
        {
            Assert.True(counts < cap / 3, $"{counts} counts for {cap + 50} payments far from the cap");
        }
    }

    [Fact]
    public void AtMostMaxMerchants_AreRemembered()
    {
        var estimates = new InFlightEstimates(new FakeTimeProvider(), replicas: 1);
        for (var merchant = 0; merchant <= InFlightEstimates.MaxMerchants; merchant++)
        {
            estimates.Counted($"m{merchant}", 0, Cap);
        }

        Assert.Null(estimates.TryEstimate("m0", Cap)); // forgotten when the map was full
        Assert.Equal(1, estimates.TryEstimate($"m{InFlightEstimates.MaxMerchants}", Cap));
    }
}

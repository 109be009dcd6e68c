using System.Collections.Concurrent;

namespace Payments.Api.Limits;

/// <summary>How many payments a merchant has in flight, as this replica last counted them plus those it admitted since,
/// so that accepting a payment need not count them every time (<see cref="Apis.PaymentAdmission"/>).</summary>
/// <remarks>
/// Why: the count reads the merchant's in-flight markers, and a finished payment's marker is deleted. etcd visits every
/// key deleted under a range since the last compaction (10 min) before it counts (etcd 3.4 and later:
/// etcd-io/etcd#11057); a merchant at 40 payments/s leaves 24,000 of them, which cost etcd 2.4-4.3 ms of CPU per
/// count here (docs/benchmarks.md). The count's cost grew with the merchant's volume.
/// <para>The cap holds as before, up to a bound: after counting <c>n</c>, a replica admits at most
/// <c>min(</c><see cref="MaxBudget"/><c>, (cap − n − 1) / (2 × replicas))</c> payments of that merchant without counting
/// again, for at most <see cref="MaxAge"/>. A merchant near its cap is therefore counted at every payment, as before.
/// An estimate only grows (payments that end are not subtracted), so it never lets through what this replica's count
/// would refuse, and it never refuses: only a count answers 429. What it adds is the budget the other replicas still
/// hold from their last counts: at most (replicas − 1) × <see cref="MaxBudget"/> payments past the cap, and only when
/// the merchant goes from half its cap to all of it within <see cref="MaxAge"/>. Concurrent admissions passing on the
/// same count overshoot the same way, as they did before.</para>
/// </remarks>
public sealed class InFlightEstimates(TimeProvider time, int replicas)
{
    /// <summary>Merchants remembered at most; past it all are forgotten (each is counted at its next payment).</summary>
    public const int MaxMerchants = 10_000;

    /// <summary>Payments a replica admits at most on one count.</summary>
    public const long MaxBudget = 32;

    /// <summary>How long a count stands in for counting again.</summary>
    public static readonly TimeSpan MaxAge = TimeSpan.FromMilliseconds(250);

    private readonly ConcurrentDictionary<string, Estimate> estimates = new(StringComparer.Ordinal);

    /// <summary>The merchant's payments in flight before this one, if this replica may admit it without counting
    /// (taking one from the budget); null: count.</summary>
    public long? TryEstimate(string merchantId, int cap)
    {
        if (!estimates.TryGetValue(merchantId, out var estimate) || time.GetElapsedTime(estimate.CountedAt) >= MaxAge)
        {
            return null;
        }

        var admitted = Interlocked.Increment(ref estimate.Admitted);
        var inFlight = estimate.Counted + admitted; // the counting payment itself, and those admitted since
        return admitted <= estimate.Budget && inFlight < cap ? inFlight : null;
    }

    /// <summary>A payment of the merchant counted <paramref name="inFlight"/> before it.</summary>
    public void Counted(string merchantId, long inFlight, int cap)
    {
        if (estimates.Count >= MaxMerchants)
        {
            estimates.Clear();
        }

        var budget = Math.Clamp((cap - inFlight - 1) / (2L * Math.Max(1, replicas)), 0, MaxBudget);
        estimates[merchantId] = new Estimate(inFlight, time.GetTimestamp(), budget);
    }

    private sealed class Estimate(long counted, long countedAt, long budget)
    {
        public long Admitted;

        public long Counted => counted;

        public long CountedAt => countedAt;

        public long Budget => budget;
    }
}

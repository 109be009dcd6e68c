using System.Diagnostics.Metrics;

namespace Payments.Benchmarks;

/// <summary>What the ledger's own instruments counted during one phase: group commit's groups and their sizes, and
/// transactions retried after a conflict. It explains a phase's figure (small groups, or conflicts) without a profiler.</summary>
internal sealed class LedgerCounters : IDisposable
{
    private readonly MeterListener listener = new();
    private long groups;
    private long grouped;
    private long conflicts;

    public LedgerCounters()
    {
        listener.InstrumentPublished = (instrument, meterListener) =>
        {
            if (instrument.Name is "payments.ledger.group_size" or "payments.ledger.conflicts")
            {
                meterListener.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
        {
            if (instrument.Name == "payments.ledger.conflicts")
            {
                Interlocked.Add(ref conflicts, value);
            }
            else
            {
                Interlocked.Increment(ref groups);
                Interlocked.Add(ref grouped, value);
            }
        });
        listener.Start();
    }

    public long Groups => Interlocked.Read(ref groups);

    public long Conflicts => Interlocked.Read(ref conflicts);

    public double MeanGroupSize => Groups == 0 ? 0 : (double)Interlocked.Read(ref grouped) / Groups;

    public void Dispose() => listener.Dispose();
}

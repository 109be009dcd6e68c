using System.Diagnostics.Metrics;

namespace Payments.Testing;

/// <summary>The running total of one long counter of this process (every meter), from when it was made until it is
/// disposed: what a test reads to check how often something happened.</summary>
public sealed class CounterTotal : IDisposable
{
    private readonly MeterListener listener = new();
    private long total;

    public CounterTotal(string instrumentName)
    {
        listener.InstrumentPublished = (instrument, meters) =>
        {
            if (instrument.Name == instrumentName)
            {
                meters.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref total, value));
        listener.Start();
    }

    public long Total => Interlocked.Read(ref total);

    public void Dispose() => listener.Dispose();
}

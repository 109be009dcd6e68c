namespace Payments.Orchestrator.Client.Records;

/// <summary>Reads kept for the change that follows them in this process (one etcd read fewer per payment).</summary>
public sealed partial class PaymentRecordStore
{
    /// <summary>Records read by <see cref="GetAndKeepAsync"/> not yet used by a change, at most
    /// <see cref="MaxKept"/> (past it they are dropped: a hint, never needed).</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (PaymentRecord Record, long Revision)> kept = new(StringComparer.Ordinal);

    public const int MaxKept = 4_096;

    /// <summary><see cref="GetAsync"/>, keeping what it read for the next <see cref="ChangeAsync"/> of the payment in this
    /// process, which then starts from it instead of reading the record again (its compare finds out if the record
    /// changed meanwhile). The saga's risk step reads the record just before the outcome is written into it.</summary>
    public async Task<(PaymentRecord Record, long Revision)?> GetAndKeepAsync(string paymentId, CancellationToken cancellationToken)
    {
        var found = await GetAsync(paymentId, cancellationToken);
        if (found is { } record)
        {
            if (kept.Count >= MaxKept)
            {
                kept.Clear();
            }

            kept[paymentId] = record;
        }

        return found;
    }

    /// <summary>The kept read of <paramref name="paymentId"/>, if any, when <paramref name="change"/> writes something
    /// on it: a kept read is used only for a write (which its compare verifies), never to decide that nothing changes.</summary>
    private (PaymentRecord Record, long Revision)? TakeKept(string paymentId, Func<PaymentRecord, PaymentRecord?> change) =>
        kept.TryRemove(paymentId, out var read) && change(read.Record) is not null ? read : null;
}

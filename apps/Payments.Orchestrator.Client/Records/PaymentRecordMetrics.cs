using System.Diagnostics.Metrics;
using Payments.Telemetry;

namespace Payments.Orchestrator.Client.Records;

/// <summary>The payment records' instruments.</summary>
internal static class PaymentRecordMetrics
{
    /// <summary>Payments that reached a terminal status, by status and reason ("none" when completed): counted once,
    /// by the transaction that records the terminal status — whoever records it (the saga's last step, an API read,
    /// the sweeper). The alerts on payments failed by faults and on compensation-failed read it.</summary>
    private static readonly Counter<long> Terminal = PaymentsTelemetry.Meter.CreateCounter<long>(
        "payments.terminal", description: "payments that reached a terminal status, by status and reason");

    /// <summary>Records a batch read left out because they do not read as a payment record (a defect, or a hand edit):
    /// one such record used to fail every pass of the sweeper and the archiver at its page, for good.</summary>
    private static readonly Counter<long> Unreadable = PaymentsTelemetry.Meter.CreateCounter<long>(
        "payments.records.unreadable", description: "payment records left out of a batch read because they do not read");

    public static void CountUnreadable() => Unreadable.Add(1);

    public static void CountTerminal(PaymentRecord record) =>
        Terminal.Add(1, new KeyValuePair<string, object?>("status", record.Status), new KeyValuePair<string, object?>("reason", record.Reason ?? "none"));
}

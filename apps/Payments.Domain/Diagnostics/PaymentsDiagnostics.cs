using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Payments.Domain.Diagnostics;

/// <summary>The platform's own traces and metrics (System.Diagnostics; exported by OpenTelemetry in each app).</summary>
public static class PaymentsDiagnostics
{
    public const string Name = "Payments";

    public static readonly ActivitySource Source = new(Name);

    private static readonly Meter Meter = new(Name);

    /// <summary>Ledger transactions that failed their compare because another writer changed a key first (then retried).</summary>
    public static readonly Counter<long> LedgerConflicts = Meter.CreateCounter<long>("payments.ledger.conflicts", description: "etcd transactions retried after a failed compare");

    /// <summary>Ledger operations by outcome (applied, replayed, refused with its code, unavailable).</summary>
    public static readonly Counter<long> LedgerOperations = Meter.CreateCounter<long>("payments.ledger.operations", description: "ledger operations by outcome");

    public static readonly Histogram<double> LedgerDuration = Meter.CreateHistogram<double>("payments.ledger.duration", unit: "ms", description: "time to apply a transfer or batch");

    /// <summary>Saga steps (workflow activities) by step and result.</summary>
    /// <summary>Observes how far journal shipping to Cosmos DB lags (age of the oldest unshipped entry, ms).</summary>
    public static void ObserveReplicationLag(Func<long> lagMilliseconds) =>
        Meter.CreateObservableGauge("payments.replication.lag", lagMilliseconds, unit: "ms", description: "age of the oldest journal entry not yet shipped to Cosmos DB");

    public static readonly Histogram<double> SagaStepDuration = Meter.CreateHistogram<double>("payments.saga.step.duration", unit: "ms", description: "payment saga activity duration");

    /// <summary>Payments that reached a terminal status, by status (counted once, when the API records it).</summary>
    public static readonly Counter<long> PaymentsTerminal = Meter.CreateCounter<long>("payments.terminal", description: "payments by terminal status");

    public static readonly Counter<long> PaymentsAccepted = Meter.CreateCounter<long>("payments.accepted", description: "payments accepted by the API");
}

namespace Payments.Orchestrator.Host;

/// <summary>Settings (configuration section <c>Payments</c>).</summary>
public sealed class OrchestratorOptions
{
    public string EtcdEndpoints { get; set; } = "http://127.0.0.1:2379";

    public string KeyPrefix { get; set; } = "/daprpayments/";

    /// <summary>Payments above this many minor units wait for a person's approval.</summary>
    public long ReviewThresholdMinor { get; set; } = 100_000;

    /// <summary>The ledger service's base URL; empty: the ledger runs in this process (local mode without services).</summary>
    public string? LedgerUrl { get; set; }

    public static readonly TimeSpan LedgerCallTimeout = TimeSpan.FromSeconds(30);

    /// <summary>The risk service's base URL; empty: the rules run in this process.</summary>
    public string? RiskUrl { get; set; }

    public static readonly TimeSpan RiskCallTimeout = TimeSpan.FromSeconds(10);
}

using Payments.Orchestrator.Client.Models;

namespace Payments.Orchestrator.Host;

/// <summary>Settings (configuration section <c>Payments</c>; etcd's are <see cref="Payments.Etcd.EtcdOptions"/>).</summary>
public sealed class OrchestratorOptions
{
    /// <summary>The ledger service's base URL: its Dapr sidecar's invocation URL on Kubernetes
    /// (<c>http://localhost:3500/v1.0/invoke/&lt;ledger app id&gt;/method/</c>), its own address locally.</summary>
    public string? LedgerUrl { get; set; }

    public static readonly TimeSpan LedgerCallTimeout = TimeSpan.FromSeconds(30);

    /// <summary>The risk service's base URL, likewise.</summary>
    public string? RiskUrl { get; set; }

    public static readonly TimeSpan RiskCallTimeout = TimeSpan.FromSeconds(10);

    /// <summary>The reviewer's deadline for a payment the sweeper resumes (the API's own setting, the same value).</summary>
    public TimeSpan ApprovalTimeout { get; set; } = TimeSpan.FromHours(24);

    /// <summary>The Dapr workflow state store's client certificate (PEM), as mounted beside the app (the chart's, with
    /// etcd TLS): read once at start, its expiry reported (<see cref="Payments.Etcd.EtcdTls.ReportSidecarCertificate"/>).</summary>
    public string? StateStoreCertificateFile { get; set; }

    public OrchestratorOptions Validate()
    {
        if (string.IsNullOrWhiteSpace(LedgerUrl) || string.IsNullOrWhiteSpace(RiskUrl))
        {
            throw new InvalidOperationException(
                "Payments:LedgerUrl and Payments:RiskUrl are required: the saga reaches the ledger and risk services through them.");
        }

        PaymentInput.CheckApprovalTimeout(ApprovalTimeout);

        return this;
    }
}

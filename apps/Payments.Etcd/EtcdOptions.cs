namespace Payments.Etcd;

/// <summary>Configuration section <c>Payments</c>: where the platform's etcd is, and the one key layout under
/// <see cref="KeyPrefix"/> that every app shares (each family's prefix is named here, once).</summary>
public sealed class EtcdOptions
{
    public const string Section = "Payments";

    /// <summary>Comma-separated client URLs of the members.</summary>
    public string EtcdEndpoints { get; set; } = "http://127.0.0.1:2379";

    public string KeyPrefix { get; set; } = "/daprpayments/";

    /// <summary>PEM files for TLS with a client certificate (all three, or none: plaintext).</summary>
    public string EtcdCaFile { get; set; } = string.Empty;

    public string EtcdCertFile { get; set; } = string.Empty;

    public string EtcdKeyFile { get; set; } = string.Empty;

    public EtcdTls? Tls => (EtcdCaFile.Length, EtcdCertFile.Length, EtcdKeyFile.Length) switch
    {
        (0, 0, 0) => null,
        ( > 0, > 0, > 0) => new EtcdTls(EtcdCaFile, EtcdCertFile, EtcdKeyFile),
        _ => throw new InvalidOperationException("Payments:EtcdCaFile, EtcdCertFile and EtcdKeyFile go together: set all three for TLS, or none."),
    };

    /// <summary>The members' <c>--quota-backend-bytes</c> (0: etcd's default, 2 GiB), for the storage metrics and the
    /// NOSPACE recovery (<see cref="Maintenance.EtcdDefragmenter"/>).</summary>
    public long QuotaBackendBytes { get; set; }

    /// <summary>Where the storage maintenance runs (<see cref="EtcdMaintenanceMode"/>): with the ledger service
    /// (<c>On</c>, the default: one process, as the run command starts it), not there (<c>Off</c>), or as the process's
    /// only job (<c>Only</c>: the chart's <c>etcd-maintenance</c> Deployment, the one pod that holds the root-role
    /// certificate, so a compromised ledger pod cannot rewrite every key).</summary>
    public EtcdMaintenanceMode EtcdMaintenance { get; set; } = EtcdMaintenanceMode.On;

    /// <summary>The certificate and key of etcd's maintenance user (root role: etcd has no narrower right to defragment
    /// or disarm an alarm), for a ledger service that runs the maintenance beside its own work (<c>On</c>). Empty:
    /// maintenance runs over the app's own connection (plaintext etcd, an etcd without auth, or <c>Only</c>, whose
    /// own certificate is the maintenance user's).</summary>
    public string EtcdMaintenanceCertFile { get; set; } = string.Empty;

    public string EtcdMaintenanceKeyFile { get; set; } = string.Empty;

    /// <summary>TLS as the maintenance user, or null to use <see cref="Tls"/>.</summary>
    public EtcdTls? MaintenanceTls => (Tls, EtcdMaintenanceCertFile.Length, EtcdMaintenanceKeyFile.Length) switch
    {
        (_, 0, 0) => null,
        ({ } tls, > 0, > 0) => tls with { CertFile = EtcdMaintenanceCertFile, KeyFile = EtcdMaintenanceKeyFile },
        _ => throw new InvalidOperationException("Payments:EtcdMaintenanceCertFile and EtcdMaintenanceKeyFile go together, and with the CA, certificate and key of the app."),
    };

    /// <summary>Where the etcd maintenance lock lives.</summary>
    public string MaintenanceLockKey => KeyPrefix + "locks/etcd-maintenance";

    /// <summary>The ledger: accounts, transfers (the journal), holds, the expiry index.</summary>
    public string LedgerPrefix => KeyPrefix + "ledger/";

    /// <summary>The API's records: merchants' key hashes and account owners.</summary>
    public string ApiPrefix => KeyPrefix + ApiFamily;

    /// <summary>The API's family, relative to <see cref="KeyPrefix"/>.</summary>
    public const string ApiFamily = "api/";

    /// <summary>Payment records: created by the API, finished by the saga.</summary>
    public string PaymentsPrefix => KeyPrefix + PaymentsFamily;

    /// <summary>The payment records' family, relative to <see cref="KeyPrefix"/>.</summary>
    public const string PaymentsFamily = "payments/";

    /// <summary>Idempotency records of the public API.</summary>
    public string IdempotencyPrefix => KeyPrefix + "idempotency/";

    /// <summary>Webhook endpoints, the outbox of payment events not yet fanned out, and deliveries due.</summary>
    public string WebhooksPrefix => KeyPrefix + "webhooks/";

    /// <summary>Markers of payment events the webhook dispatcher has not taken yet; written by whoever changes a
    /// payment record (<c>PaymentEvents</c>).</summary>
    public string WebhookOutboxPrefix => KeyPrefix + WebhookOutboxFamily;

    /// <summary>Where the webhook dispatcher's lock lives (one API replica delivers at a time).</summary>
    public string WebhookLockKey => KeyPrefix + "locks/webhook-dispatcher";

    /// <summary>Accounts' settings (currency, overdraft limit, closed), relative to <see cref="KeyPrefix"/>: the ledger
    /// writes them beside each account record, and they travel with the journal, which holds only transfers.</summary>
    public const string AccountSettingsFamily = "ledger/settings/";

    /// <summary>The webhook outbox (<see cref="WebhookOutboxPrefix"/>) and the deliveries owed, relative to
    /// <see cref="KeyPrefix"/>: a region's own work in progress, never shipped; the failover service drops a lost
    /// epoch's before the region writes again (<c>RegionEpochMirror</c>).</summary>
    public const string WebhookOutboxFamily = "webhooks/outbox/", WebhookDueFamily = "webhooks/due/";

    /// <summary>Merchants' webhook endpoints with their signing secrets, relative to <see cref="KeyPrefix"/> (under
    /// <see cref="WebhooksPrefix"/>): shipped, so that a takeover keeps delivering to them.</summary>
    public const string WebhookEndpointsFamily = "webhooks/endpoints/";

    /// <summary>The records of webhook endpoints' deletions (<see cref="WebhookEndpointRemovals"/>), relative to
    /// <see cref="KeyPrefix"/>: shipped, so that a deleted endpoint is deleted in the other region too.</summary>
    public const string WebhookRemovalsFamily = "webhooks/removed/";

    /// <summary>Copies of the ledger's hold bars (a hold voided before it was placed), relative to <see cref="KeyPrefix"/>:
    /// shipped, so that a region that takes a payment over knows the other region failed it, and refuses its hold too.</summary>
    public const string HoldBarsFamily = "ledger/bars/";

    /// <summary>The families the active region ships beside its journal (relative to <see cref="KeyPrefix"/>). Not the
    /// webhook outbox nor the deliveries owed: those are the active region's work in progress (ADR 0005).</summary>
    public static IReadOnlyList<string> ReplicatedRecordFamilies { get; } =
        [ApiFamily, PaymentsFamily, AccountSettingsFamily, HoldBarsFamily, WebhookEndpointsFamily, WebhookRemovalsFamily];
}

/// <summary>Where etcd's storage maintenance (defragmentation, NOSPACE recovery, the size metrics) runs.</summary>
public enum EtcdMaintenanceMode
{
    /// <summary>In the ledger service, beside the ledger.</summary>
    On,

    /// <summary>Not in this process: another one runs it (the chart's <c>etcd-maintenance</c> Deployment).</summary>
    Off,

    /// <summary>As this process's only job: no ledger, no API; health, readiness and metrics only.</summary>
    Only,
}

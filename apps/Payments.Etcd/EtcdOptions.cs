namespace Payments.Etcd;

/// <summary>Configuration section <c>Payments</c>: where the platform's etcd is, and the one key layout under
/// <see cref="KeyPrefix"/> that every app shares (each family's prefix is named here, once).</summary>
public sealed class EtcdOptions
{
    public const string Section = "Payments";

    /// <summary>Comma-separated client URLs of the members.</summary>
    public string EtcdEndpoints { get; set; } = "http://127.0.0.1:2379";

    public string KeyPrefix { get; set; } = "/daprpayments/";

    /// <summary>The members' <c>--quota-backend-bytes</c> (0: etcd's default, 2 GiB), for the storage metrics and the
    /// NOSPACE recovery (<see cref="Maintenance.EtcdDefragmenter"/>).</summary>
    public long QuotaBackendBytes { get; set; }

    /// <summary>Where the etcd maintenance lock lives.</summary>
    public string MaintenanceLockKey => KeyPrefix + "locks/etcd-maintenance";

    /// <summary>The ledger: accounts, transfers (the journal), holds, the expiry index.</summary>
    public string LedgerPrefix => KeyPrefix + "ledger/";

    /// <summary>The API's records: merchants' key hashes and account owners.</summary>
    public string ApiPrefix => KeyPrefix + "api/";

    /// <summary>Payment records: created by the API, finished by the saga.</summary>
    public string PaymentsPrefix => KeyPrefix + "payments/";

    /// <summary>Idempotency records of the public API.</summary>
    public string IdempotencyPrefix => KeyPrefix + "idempotency/";

    /// <summary>The families the active region ships beside its journal (relative to <see cref="KeyPrefix"/>).</summary>
    public static IReadOnlyList<string> ReplicatedRecordFamilies { get; } = ["api/", "payments/"];
}

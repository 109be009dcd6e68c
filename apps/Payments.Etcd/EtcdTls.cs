using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Payments.Telemetry;

namespace Payments.Etcd;

/// <summary>TLS to etcd with a client certificate: the members' CA (PEM), this client's certificate and key (PEM).
/// With etcd's <c>--client-cert-auth</c> and auth enabled, the certificate's common name is the etcd user, whose roles
/// limit it to its key prefixes (<see cref="EtcdRbac"/>).</summary>
public sealed record EtcdTls(string CaFile, string CertFile, string KeyFile)
{
    /// <summary>The client side of the handshake: present the certificate, trust only the configured CA (not the
    /// machine's roots: anyone with a public certificate for the name could otherwise pose as etcd).</summary>
    /// <remarks>The files are read again at a handshake after they changed: cert-manager renews the certificate (and
    /// the CA) in the mounted Secret while the pod runs, and a process holding the first one would fail every
    /// reconnect once it expired — a payment outage months after the deploy. Connections already open keep theirs
    /// (etcd checks a client certificate at the handshake only).</remarks>
    public SslClientAuthenticationOptions ClientOptions()
    {
        var files = Loaded.GetOrAdd(this, tls => new Files(tls)); // one set per configured set of files: the gauge's
        files.Current(); // unreadable files fail the start, not the first call
        return new SslClientAuthenticationOptions
        {
            LocalCertificateSelectionCallback = (_, _, _, _, _) => files.Current().Client,
            RemoteCertificateValidationCallback = (_, certificate, _, errors) => IsTrusted(files.Current().Cas, certificate, errors),
        };
    }

    /// <summary>The file sets this process reads (one per configured <see cref="EtcdTls"/>: a handful).</summary>
    private static readonly ConcurrentDictionary<EtcdTls, Files> Loaded = new();

    /// <summary>Seconds until the client certificate and the CA this process presents and trusts expire, as last read
    /// (a renewal shows at once): a chart-generated certificate lives 825 days and nothing renews it, and on that day
    /// etcd refuses every client — the alert <c>DaprPaymentsEtcdCertificateExpiring</c> reads this.</summary>
    private static readonly ObservableGauge<double> Expiry = PaymentsTelemetry.Meter.CreateObservableGauge(
        "payments.etcd.certificate_expiry", ObserveExpiry, unit: "s",
        description: "seconds until the etcd client certificate (certificate=client), the CA it trusts (certificate=ca), or the state store's certificate the pod's Dapr sidecar holds (certificate=statestore) expires");

    /// <summary>When the certificate a sidecar holds since it started expires (the Dapr etcd state store's: the Dapr
    /// operator resolved it into the component at the pod's start and the sidecar never reads it again), reported as
    /// <c>certificate=statestore</c>; null until <see cref="ReportSidecarCertificate"/>.</summary>
    private static DateTimeOffset? sidecarCertificateExpiry;

    /// <summary>Reads <paramref name="certificateFile"/> (PEM) once, now — as the pod's sidecar did at its start, not
    /// again at a renewal — and reports its expiry beside this process's own certificates, so that the alert
    /// <c>DaprPaymentsEtcdCertificateExpiring</c> fires for a renewal the sidecar never took. The expiry first read is
    /// kept in <paramref name="memoFile"/> (the pod's own emptyDir, which outlives a restart of the app's container):
    /// the app restarted alone read the renewed file while the sidecar still held the old one, and the alert went
    /// silent (a review). The earlier of the two is reported.</summary>
    public static void ReportSidecarCertificate(string certificateFile, string memoFile)
    {
        ArgumentException.ThrowIfNullOrEmpty(certificateFile);
        ArgumentException.ThrowIfNullOrEmpty(memoFile);
        using var certificate = X509Certificate2.CreateFromPem(File.ReadAllText(certificateFile)); // its public part: no key here
        var expiry = new DateTimeOffset(certificate.NotAfter.ToUniversalTime(), TimeSpan.Zero);
        if (File.Exists(memoFile) && DateTimeOffset.TryParse(File.ReadAllText(memoFile).Trim(), System.Globalization.CultureInfo.InvariantCulture,
                System.Globalization.DateTimeStyles.RoundtripKind, out var first))
        {
            expiry = first < expiry ? first : expiry;
        }
        else
        {
            File.WriteAllText(memoFile, expiry.ToString("O", System.Globalization.CultureInfo.InvariantCulture));
        }

        sidecarCertificateExpiry = expiry;
    }

    private static IEnumerable<Measurement<double>> ObserveExpiry()
    {
        var now = DateTimeOffset.UtcNow; // a gauge of the wall clock's distance to a certificate's own date
        if (sidecarCertificateExpiry is { } sidecar)
        {
            yield return new Measurement<double>((sidecar - now).TotalSeconds, new KeyValuePair<string, object?>("certificate", "statestore"));
        }

        foreach (var files in Loaded.Values)
        {
            var (cas, client) = files.Current();
            yield return new Measurement<double>((client.NotAfter.ToUniversalTime() - now).TotalSeconds, new KeyValuePair<string, object?>("certificate", "client"));
            // The first to expire of those trusted: in a rotation's bundle, the old CA, which is then due to be dropped.
            var firstExpiring = cas.Min(ca => ca.NotAfter.ToUniversalTime());
            yield return new Measurement<double>((firstExpiring - now).TotalSeconds, new KeyValuePair<string, object?>("certificate", "ca"));
        }
    }

    internal static bool IsTrusted(X509Certificate2Collection cas, X509Certificate? presented, SslPolicyErrors errors)
    {
        // A wrong name or no certificate is never fine; a chain error is expected (the CA is not a machine root) and
        // judged below against the configured CA alone.
        if (presented is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != SslPolicyErrors.None)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(cas); // every CA of the file: a bundle of the old and new one rotates without an outage
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck; // a private CA without a revocation list
        using var certificate = new X509Certificate2(presented);
        return chain.Build(certificate);
    }

    /// <summary>Every certificate of the CA file. It read the first alone, so a bundle of the old and the new CA — how a
    /// CA is rotated without an outage (etcd's <c>--trusted-ca-file</c> takes bundles too) — trusted the old one only,
    /// and members serving a certificate of the new CA were refused.</summary>
    internal static X509Certificate2Collection ReadCas(string caFile)
    {
        var cas = new X509Certificate2Collection();
        cas.ImportFromPem(File.ReadAllText(caFile));
        return cas.Count > 0 ? cas : throw new System.Security.Cryptography.CryptographicException($"No certificate in '{caFile}'.");
    }

    /// <summary>The three files as last read, and their write times then. A Secret volume swaps its files at once
    /// (a symlink to a new directory), so a change of any time means a new set; a half-written set that does not
    /// parse keeps the last good one until the next handshake.</summary>
    internal sealed class Files(EtcdTls tls)
    {
        private readonly Lock gate = new();
        private (DateTime Ca, DateTime Cert, DateTime Key) stamp;
        private (X509Certificate2Collection Cas, X509Certificate2 Client)? loaded;

        public (X509Certificate2Collection Cas, X509Certificate2 Client) Current()
        {
            var now = (File.GetLastWriteTimeUtc(tls.CaFile), File.GetLastWriteTimeUtc(tls.CertFile), File.GetLastWriteTimeUtc(tls.KeyFile));
            lock (gate)
            {
                if (loaded is { } current && now == stamp)
                {
                    return current;
                }

                try
                {
                    loaded = (ReadCas(tls.CaFile), X509Certificate2.CreateFromPemFile(tls.CertFile, tls.KeyFile));
                    stamp = now;
                }
                catch (Exception exception) when (loaded is not null && exception is IOException or System.Security.Cryptography.CryptographicException)
                {
                    // Mid-swap: keep the last good set; the next handshake reads again.
                }

                return loaded!.Value;
            }
        }
    }
}

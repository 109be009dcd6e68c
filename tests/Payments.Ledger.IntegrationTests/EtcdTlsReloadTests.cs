using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Payments.Etcd;

namespace Payments.Ledger.IntegrationTests;

/// <summary>The finding: the etcd client certificate was read once at start, and cert-manager renews it in the mounted
/// Secret while pods run, so every reconnect after the first certificate expired (about 90 days) would have failed.
/// The files are read again at a handshake once they changed. (Every test against the local cluster handshakes through
/// the same callbacks; this one shows the reload.)</summary>
public sealed class EtcdTlsReloadTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("etcd-tls-").FullName;

    [Fact]
    public void ARenewedCertificate_IsPresentedAtTheNextHandshake_AndAHalfWrittenOneKeepsTheLastGood()
    {
        var tls = new EtcdTls(Path.Combine(directory, "ca.crt"), Path.Combine(directory, "tls.crt"), Path.Combine(directory, "tls.key"));
        var first = Write(tls, "etcd-client-first", DateTime.UtcNow.AddMinutes(-10));
        var files = new EtcdTls.Files(tls);
        Assert.Equal(first, files.Current().Client.Thumbprint);
        Assert.Equal(first, files.Current().Client.Thumbprint); // unchanged files: not read again

        var renewed = Write(tls, "etcd-client-renewed", DateTime.UtcNow.AddMinutes(-5));
        Assert.Equal(renewed, files.Current().Client.Thumbprint);

        File.WriteAllText(tls.CertFile, "-----BEGIN CERTIFICATE-----\nnot yet");
        File.SetLastWriteTimeUtc(tls.CertFile, DateTime.UtcNow);
        Assert.Equal(renewed, files.Current().Client.Thumbprint);
    }

    /// <summary>Found in review: the orchestrator's Dapr sidecar reads the workflow state store's certificate once, at
    /// the pod's start (the Dapr operator resolves it into the component), so a renewal never reached it, and no gauge
    /// watched it: the alert could not fire before it expired. The orchestrator reports it as certificate=statestore,
    /// read once as the sidecar did — a renewal of the file afterwards does not change what it reports, even after the
    /// app's container restarted alone.</summary>
    [Fact]
    public void TheSidecarsCertificate_IsReportedAsItWasAtStart_NotAsRenewed()
    {
        var file = Path.Combine(directory, "statestore.crt");
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=statestore", key, HashAlgorithmName.SHA256);
        using (var held = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddDays(10)))
        {
            File.WriteAllText(file, held.ExportCertificatePem());
        }

        var memo = Path.Combine(directory, "statestore-expiry");
        EtcdTls.ReportSidecarCertificate(file, memo);
        using (var renewed = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddDays(90)))
        {
            File.WriteAllText(file, renewed.ExportCertificatePem());
        }

        // The app's container restarted alone (its pod, and so its sidecar, did not): the renewed file is read, and the
        // one the sidecar holds is still reported.
        EtcdTls.ReportSidecarCertificate(file, memo);

        var reported = new List<double>();
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, meters) =>
        {
            if (instrument.Name == "payments.etcd.certificate_expiry")
            {
                meters.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<double>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag is { Key: "certificate", Value: "statestore" })
                {
                    reported.Add(value);
                }
            }
        });
        listener.Start();
        listener.RecordObservableInstruments();

        var seconds = Assert.Single(reported);
        Assert.InRange(seconds, TimeSpan.FromDays(9).TotalSeconds, TimeSpan.FromDays(10).TotalSeconds);
    }

    /// <summary>Found in review: only the CA file's first certificate was trusted, so the bundle of the old and new CA
    /// that rotates a CA without an outage refused every member serving a certificate of the new one.</summary>
    [Fact]
    public void EveryCaOfABundle_IsTrusted_AndNoOther()
    {
        using var oldCa = Authority("old");
        using var newCa = Authority("new");
        using var otherCa = Authority("other");
        var file = Path.Combine(directory, "bundle.crt");
        File.WriteAllText(file, oldCa.ExportCertificatePem() + "\n" + newCa.ExportCertificatePem() + "\n");

        var cas = EtcdTls.ReadCas(file);

        Assert.Equal(2, cas.Count);
        const System.Net.Security.SslPolicyErrors Untrusted = System.Net.Security.SslPolicyErrors.RemoteCertificateChainErrors; // not a machine root
        using var ofOld = Member(oldCa);
        using var ofNew = Member(newCa);
        using var ofOther = Member(otherCa);
        Assert.True(EtcdTls.IsTrusted(cas, ofOld, Untrusted));
        Assert.True(EtcdTls.IsTrusted(cas, ofNew, Untrusted));
        Assert.False(EtcdTls.IsTrusted(cas, ofOther, Untrusted));
    }

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private static X509Certificate2 Authority(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN=etcd-ca-{name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign, true));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddDays(1));
    }

    private static X509Certificate2 Member(X509Certificate2 authority)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=etcd-member", key, HashAlgorithmName.SHA256);
        return request.Create(authority, DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddHours(1), [1, 2, 3, 4]);
    }

    /// <summary>A self-signed certificate as CA and client (what matters here is which one is read), with the files'
    /// time set as a Secret volume's swap would change it.</summary>
    private static string Write(EtcdTls tls, string name, DateTime time)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddDays(1));
        File.WriteAllText(tls.CaFile, certificate.ExportCertificatePem());
        File.WriteAllText(tls.CertFile, certificate.ExportCertificatePem());
        File.WriteAllText(tls.KeyFile, key.ExportPkcs8PrivateKeyPem());
        foreach (var file in new[] { tls.CaFile, tls.CertFile, tls.KeyFile })
        {
            File.SetLastWriteTimeUtc(file, time);
        }

        return certificate.Thumbprint;
    }
}

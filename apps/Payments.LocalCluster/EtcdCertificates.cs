using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Payments.Etcd;

namespace Payments.LocalCluster;

/// <summary>Development and tests only: a throw-away CA for a local etcd cluster, its members' certificate (server and
/// peer, for 127.0.0.1), and client certificates whose common name is the etcd user. Made at start with .NET's
/// <see cref="CertificateRequest"/>, written as PEM files into the cluster's directory (private to this user).</summary>
public sealed class EtcdCertificates
{
    private static readonly TimeSpan Validity = TimeSpan.FromDays(2);
    private readonly X509Certificate2 ca;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, EtcdTls> clients = new(StringComparer.Ordinal);
    private readonly string directory;
    private readonly IReadOnlyList<string> memberNames;

    private EtcdCertificates(string directory, X509Certificate2 ca, IReadOnlyList<string> memberNames)
    {
        this.directory = directory;
        this.ca = ca;
        this.memberNames = memberNames;
        CaFile = Write("ca.crt", ca.ExportCertificatePem());
        var member = Issue("etcd-member", serverAuth: true);
        (MemberCertFile, MemberKeyFile) = WritePair("member", member);
    }

    public string CaFile { get; }

    /// <summary>Every member's certificate (server and peer alike): 127.0.0.1, localhost and the member names given at
    /// creation, server and client auth.</summary>
    public string MemberCertFile { get; }

    public string MemberKeyFile { get; }

    /// <param name="memberNames">Host names the members are reached by besides 127.0.0.1 and localhost (containers'
    /// network aliases).</param>
    public static EtcdCertificates Create(string clusterDirectory, IReadOnlyList<string>? memberNames = null)
    {
        var directory = Path.Combine(clusterDirectory, "pki");
        Directory.CreateDirectory(directory);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=daprpayments local etcd CA", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: true, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        var now = DateTimeOffset.UtcNow;
        var ca = request.CreateSelfSigned(now.AddMinutes(-5), now.Add(Validity));
        return new EtcdCertificates(directory, ca, memberNames ?? []);
    }

    /// <summary>A client certificate for etcd user <paramref name="user"/> (its common name), as TLS settings.</summary>
    /// <remarks>Issued once per user and kept: apps started later (a restart) find the same files.</remarks>
    public EtcdTls Client(string user)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(user);
        return clients.GetOrAdd(user, name =>
        {
            var (cert, key) = WritePair($"client-{name}", Issue(name, serverAuth: false));
            return new EtcdTls(CaFile, cert, key);
        });
    }

    private X509Certificate2 Issue(string commonName, bool serverAuth)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={commonName}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, critical: true));
        var usages = new OidCollection { new Oid("1.3.6.1.5.5.7.3.2") }; // client auth: every member is also a peer's client
        if (serverAuth)
        {
            usages.Add(new Oid("1.3.6.1.5.5.7.3.1"));
            var names = new SubjectAlternativeNameBuilder();
            names.AddIpAddress(IPAddress.Loopback);
            names.AddDnsName("localhost");
            foreach (var name in memberNames)
            {
                names.AddDnsName(name);
            }

            request.CertificateExtensions.Add(names.Build());
        }

        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(usages, critical: false));
        var now = DateTimeOffset.UtcNow;
        using var issued = request.Create(ca, now.AddMinutes(-5), ca.NotAfter, RandomNumberGenerator.GetBytes(16)); // no later than its CA
        return issued.CopyWithPrivateKey(key);
    }

    private (string Cert, string Key) WritePair(string name, X509Certificate2 certificate)
    {
        using var key = certificate.GetECDsaPrivateKey() ?? throw new InvalidOperationException("An ECDSA key was expected.");
        return (Write($"{name}.crt", certificate.ExportCertificatePem()), Write($"{name}.key", key.ExportPkcs8PrivateKeyPem()));
    }

    private string Write(string name, string pem)
    {
        var path = Path.Combine(directory, name);
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using var file = new FileStream(path, options);
        using var writer = new StreamWriter(file);
        writer.Write(pem);
        return path;
    }
}

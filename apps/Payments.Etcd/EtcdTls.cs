using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace Payments.Etcd;

/// <summary>TLS to etcd with a client certificate: the members' CA (PEM), this client's certificate and key (PEM).
/// With etcd's <c>--client-cert-auth</c> and auth enabled, the certificate's common name is the etcd user, whose roles
/// limit it to its key prefixes (<see cref="EtcdRbac"/>).</summary>
public sealed record EtcdTls(string CaFile, string CertFile, string KeyFile)
{
    /// <summary>The client side of the handshake: present the certificate, trust only the configured CA (not the
    /// machine's roots: anyone with a public certificate for the name could otherwise pose as etcd).</summary>
    public SslClientAuthenticationOptions ClientOptions()
    {
        var ca = X509Certificate2.CreateFromPem(File.ReadAllText(CaFile));
        var client = X509Certificate2.CreateFromPemFile(CertFile, KeyFile);
        return new SslClientAuthenticationOptions
        {
            ClientCertificates = [client],
            RemoteCertificateValidationCallback = (_, certificate, _, errors) => IsTrusted(ca, certificate, errors),
        };
    }

    private static bool IsTrusted(X509Certificate2 ca, X509Certificate? presented, SslPolicyErrors errors)
    {
        // A wrong name or no certificate is never fine; a chain error is expected (the CA is not a machine root) and
        // judged below against the configured CA alone.
        if (presented is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != SslPolicyErrors.None)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck; // a private CA without a revocation list
        using var certificate = new X509Certificate2(presented);
        return chain.Build(certificate);
    }
}

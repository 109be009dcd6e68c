using System.Security.Cryptography;
using System.Text;

namespace Payments.ServiceDefaults.Security;

/// <summary>A shared secret held as its SHA-256 digest and compared in constant time: neither the length nor a
/// prefix of the secret leaks through the timing of a refusal.</summary>
public sealed class SecretDigest
{
    private readonly byte[] digest;

    public SecretDigest(string secret)
    {
        ArgumentException.ThrowIfNullOrEmpty(secret);
        digest = Hash(secret);
    }

    public bool Matches(string? presented) =>
        CryptographicOperations.FixedTimeEquals(Hash(presented ?? string.Empty), digest);

    private static byte[] Hash(string value) => SHA256.HashData(Encoding.UTF8.GetBytes(value));
}

namespace Payments.Failover.Security;

/// <summary>Configuration section <c>Admin</c>: the operator credential of the failover service's admin API and the
/// limits on switchovers.</summary>
/// <remarks>Rotation without downtime: put the new token in <see cref="NextToken"/> (both are accepted), move the
/// operators and tools to it, then make it <see cref="Token"/> and clear <see cref="NextToken"/> (docs/security.md).</remarks>
public sealed class AdminOptions
{
    public const string Section = "Admin";

    /// <summary>The operator's bearer token (on Kubernetes from a Secret; locally generated per run).</summary>
    public string Token { get; set; } = string.Empty;

    /// <summary>A second accepted token while the first is being rotated out (empty: none).</summary>
    public string NextToken { get; set; } = string.Empty;

    /// <summary>The only region a planned switchover may hand over to: the other region of the deployment.</summary>
    public string PeerRegion { get; set; } = string.Empty;

    /// <summary>After a switchover, how long further ones are refused: a loop of switchovers would stop writes
    /// (about 14 s each) again and again.</summary>
    public TimeSpan SwitchoverCooldown { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The token pair as the admin API checks it (set by <see cref="Validate"/>).</summary>
    public Payments.ServiceDefaults.Security.OperatorCredential? Credential { get; private set; }

    public AdminOptions Validate(string region)
    {
        Credential = new Payments.ServiceDefaults.Security.OperatorCredential(Token, NextToken);

        if (string.IsNullOrWhiteSpace(PeerRegion) || string.Equals(PeerRegion, region, StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"{Section}:PeerRegion must name the other region of the deployment (this one is '{region}').");
        }

        if (SwitchoverCooldown < TimeSpan.Zero)
        {
            throw new InvalidOperationException($"{Section}:SwitchoverCooldown must not be negative.");
        }

        return this;
    }
}

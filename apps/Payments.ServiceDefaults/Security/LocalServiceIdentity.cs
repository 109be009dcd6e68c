using System.Security.Cryptography;

namespace Payments.ServiceDefaults.Security;

/// <summary>Development and tests only: the service identity of a local system (the run command, the container suite, a
/// test's in-process apps): one fresh app token per serving app, and for each app only the tokens of the apps it
/// calls — as on Kubernetes, where each app token reaches only its own pod. No daprd runs here, so a caller presents
/// the target's token and its own app id itself, which is what the target's sidecar would present; the targets run the
/// same check either way (docs/security.md).</summary>
public sealed class LocalServiceIdentity
{
    /// <summary>Who calls whom (the chart's access-control policies say the same).</summary>
    private static readonly Dictionary<string, string[]> Calls = new(StringComparer.Ordinal)
    {
        [ServiceRoles.Api] = [ServiceRoles.Ledger, ServiceRoles.Orchestrator],
        [ServiceRoles.Orchestrator] = [ServiceRoles.Ledger, ServiceRoles.Risk],
    };

    private readonly Dictionary<string, string> tokens = new[] { ServiceRoles.Ledger, ServiceRoles.Risk, ServiceRoles.Orchestrator }
        .ToDictionary(role => role, _ => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)), StringComparer.Ordinal);

    /// <summary>Each internal service's app token, by role (written for the developer to a private file, never printed).</summary>
    public IReadOnlyDictionary<string, string> Tokens => tokens;

    /// <summary>The configuration of the app in <paramref name="role"/>, as keys with ':' (or '__' for the
    /// environment when <paramref name="separator"/> says so).</summary>
    public IReadOnlyDictionary<string, string> Settings(string role, string separator = ":")
    {
        var prefix = ServiceIdentityOptions.Section + separator;
        var settings = new Dictionary<string, string>(StringComparer.Ordinal) { [prefix + "AppId"] = role };
        if (tokens.TryGetValue(role, out var own))
        {
            settings[prefix + "AppToken"] = own;
        }

        foreach (var target in Calls.GetValueOrDefault(role, []))
        {
            settings[prefix + "TargetTokens" + separator + target] = tokens[target];
        }

        return settings;
    }

    /// <summary>The environment of the process in <paramref name="role"/>.</summary>
    public IReadOnlyDictionary<string, string> Environment(string role) => Settings(role, "__");

    /// <summary>Presents <paramref name="caller"/>'s identity to <paramref name="target"/> on every request of
    /// <paramref name="http"/> (tools and tests that call an internal service as one of the apps would).</summary>
    public void Present(HttpClient http, string caller, string target)
    {
        ArgumentNullException.ThrowIfNull(http);
        http.DefaultRequestHeaders.Add(ServiceIdentityExtensions.TokenHeader, tokens[target]);
        http.DefaultRequestHeaders.Add(ServiceIdentityExtensions.CallerHeader, caller);
    }
}

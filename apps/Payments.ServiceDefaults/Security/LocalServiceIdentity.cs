using System.Security.Cryptography;

namespace Payments.ServiceDefaults.Security;

/// <summary>Development and tests only: the service identity of a local system (the run command, the container suite, a
/// test's in-process apps). No daprd runs here, so each caller gets a token of its own for each app it calls, and the
/// app knows the caller by the token (<see cref="ServiceIdentityOptions.CallerTokens"/>): a caller cannot pass for
/// another by naming itself so. Each serving app also gets its own app token, which only a sidecar presents (the
/// container suite's daprd mode), as on Kubernetes where each app token reaches only its own pod (docs/security.md).</summary>
public sealed class LocalServiceIdentity
{
    /// <summary>Who calls whom (the chart's access-control policies say the same; the failover service's call is the
    /// DR drill's, which samples replication progress as that service).</summary>
    private static readonly Dictionary<string, string[]> Calls = new(StringComparer.Ordinal)
    {
        [ServiceRoles.Api] = [ServiceRoles.Ledger, ServiceRoles.Orchestrator],
        [ServiceRoles.Orchestrator] = [ServiceRoles.Ledger, ServiceRoles.Risk],
        [ServiceRoles.Failover] = [ServiceRoles.Ledger],
    };

    private readonly Dictionary<string, string> tokens = new[] { ServiceRoles.Ledger, ServiceRoles.Risk, ServiceRoles.Orchestrator }
        .ToDictionary(role => role, _ => NewToken(), StringComparer.Ordinal);

    private readonly Dictionary<(string Caller, string Target), string> callTokens = Calls
        .SelectMany(call => call.Value.Select(target => (call.Key, target)))
        .ToDictionary(pair => pair, _ => NewToken());

    /// <summary>Each internal service's app token, by role (the one its sidecar would present).</summary>
    public IReadOnlyDictionary<string, string> Tokens => tokens;

    /// <summary>The token <paramref name="caller"/> presents to <paramref name="target"/> (written for the developer to
    /// a private file, never printed).</summary>
    public string TokenFor(string caller, string target) => callTokens[(caller, target)];

    /// <summary>Every caller's token for every target it calls.</summary>
    public IEnumerable<(string Caller, string Target, string Token)> CallTokens =>
        callTokens.Select(pair => (pair.Key.Caller, pair.Key.Target, pair.Value));

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

        foreach (var ((caller, target), token) in callTokens)
        {
            if (caller == role)
            {
                settings[prefix + "TargetTokens" + separator + target] = token;
            }

            if (target == role)
            {
                settings[prefix + "CallerTokens" + separator + caller] = token;
            }
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
        http.DefaultRequestHeaders.Add(ServiceIdentityExtensions.TokenHeader, TokenFor(caller, target));
        http.DefaultRequestHeaders.Add(ServiceIdentityExtensions.CallerHeader, caller);
    }

    private static string NewToken() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
}

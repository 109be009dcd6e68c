using Microsoft.Extensions.Configuration;

namespace Payments.ServiceDefaults.Security;

/// <summary>Who this app is and how it proves it, inbound and outbound (docs/security.md, "Service identity").
/// On Kubernetes Dapr carries the identity: the sidecar presents the app token (<c>dapr.io/app-token-secret</c>, the
/// app reads the same Secret as <c>APP_API_TOKEN</c>) on every request it delivers and names the caller's app id in
/// <c>dapr-caller-app-id</c>, which it stamps itself after mutual TLS and access control (dapr/dapr v1.18,
/// pkg/channel/http/http_channel.go and pkg/messaging/direct_messaging.go). Locally and in the container suite there
/// is no sidecar, so a caller presents a token of its own for that target (<see cref="TargetTokens"/>), and the target
/// knows the caller by which token it is (<see cref="CallerTokens"/>).</summary>
public sealed class ServiceIdentityOptions
{
    public const string Section = "ServiceIdentity";

    /// <summary>Shorter tokens are refused at start: Dapr's docs suggest 16 random bytes, base64 (24 characters).</summary>
    public const int MinTokenLength = 24;

    /// <summary>This app's Dapr app id: what a direct caller names itself as (<c>dapr-caller-app-id</c>).</summary>
    public string AppId { get; set; } = string.Empty;

    /// <summary>What every request to this app must carry in <c>dapr-api-token</c> (<c>APP_API_TOKEN</c> when unset).</summary>
    public string AppToken { get; set; } = string.Empty;

    /// <summary>The token this app presents to its own sidecar's API (<c>DAPR_API_TOKEN</c>, <c>dapr.io/api-token-secret</c>).</summary>
    public string DaprApiToken { get; set; } = string.Empty;

    /// <summary>Role (<see cref="ServiceRoles"/>) → the Dapr app id that plays it. A role missing here is its own app id.</summary>
    public Dictionary<string, string> Callers { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Direct calls only (no sidecar): role of a target → the token this app presents to it (its own for
    /// that target: see <see cref="CallerTokens"/>).</summary>
    public Dictionary<string, string> TargetTokens { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Direct calls only (no sidecar): role of a caller → the token that caller alone presents to this app.
    /// When any is set, a request's role is the one whose token it carries, and its <c>dapr-caller-app-id</c> is not
    /// believed: with one token for all callers, as the sidecar's, any caller could name itself another (the
    /// orchestrator as the API, to deposit). On Kubernetes daprd stamps the caller's id after mutual TLS.</summary>
    public Dictionary<string, string> CallerTokens { get; set; } = new(StringComparer.Ordinal);

    public static ServiceIdentityOptions From(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var options = configuration.GetSection(Section).Get<ServiceIdentityOptions>() ?? new ServiceIdentityOptions();
        options.AppToken = FirstSet(options.AppToken, configuration["APP_API_TOKEN"]);
        options.DaprApiToken = FirstSet(options.DaprApiToken, configuration["DAPR_API_TOKEN"]);
        return options;
    }

    /// <summary>The app id that plays <paramref name="role"/>.</summary>
    public string AppIdOf(string role) => Callers.TryGetValue(role, out var appId) && appId.Length > 0 ? appId : role;

    /// <summary>For an app that serves internal endpoints: its token must be set and long enough.</summary>
    public ServiceIdentityOptions ValidateForServing()
    {
        if (CallerTokens.Any(pair => pair.Value.Length < MinTokenLength))
        {
            throw new InvalidOperationException($"Every ServiceIdentity:CallerTokens entry must hold at least {MinTokenLength} characters.");
        }

        if (AppToken.Length < MinTokenLength)
        {
            throw new InvalidOperationException(
                $"ServiceIdentity:AppToken (or APP_API_TOKEN) must hold at least {MinTokenLength} characters: every internal endpoint " +
                "refuses callers without it. On Kubernetes the chart takes it from the app's token Secret (docs/security.md).");
        }

        return this;
    }

    private static string FirstSet(string value, string? fallback) => value.Length > 0 ? value : fallback ?? string.Empty;
}

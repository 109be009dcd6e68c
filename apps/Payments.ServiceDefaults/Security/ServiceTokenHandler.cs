namespace Payments.ServiceDefaults.Security;

/// <summary>Outbound identity on an invocation client. Through a sidecar (Kubernetes): the app's Dapr API token, which
/// the sidecar checks and removes before it invokes the target with the target's own app token. Direct (locally and in
/// the container suite, where no sidecar runs): this app's own token for that target, by which the target knows it
/// (<see cref="ServiceIdentityOptions.CallerTokens"/>), and its id, for the logs.</summary>
internal sealed class ServiceTokenHandler(IReadOnlyList<KeyValuePair<string, string>> headers) : DelegatingHandler
{
    public static IReadOnlyList<KeyValuePair<string, string>> HeadersFor(ServiceIdentityOptions identity, string targetRole)
    {
        ArgumentNullException.ThrowIfNull(identity);
        if (identity.TargetTokens.TryGetValue(targetRole, out var targetToken) && targetToken.Length > 0)
        {
            if (identity.AppId.Length == 0)
            {
                throw new InvalidOperationException($"ServiceIdentity:AppId is required to call the {targetRole} service directly.");
            }

            return [new(ServiceIdentityExtensions.TokenHeader, targetToken), new(ServiceIdentityExtensions.CallerHeader, identity.AppId)];
        }

        return identity.DaprApiToken.Length > 0 ? [new(ServiceIdentityExtensions.TokenHeader, identity.DaprApiToken)] : [];
    }

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        foreach (var (name, value) in headers)
        {
            request.Headers.Remove(name);
            request.Headers.TryAddWithoutValidation(name, value);
        }

        return base.SendAsync(request, cancellationToken);
    }
}

namespace Payments.Api.Extensions;

/// <summary>HEAD is GET without the content (RFC 9110 §9.3.2), and a general-purpose server supports both (§9.1):
/// monitors, caches and link checkers send HEAD, and a 405 tells them the resource is broken. Every GET route of the
/// API answers HEAD too, through the same authentication, scopes and limits; Kestrel sends no body for HEAD.</summary>
public static class HeadRequests
{
    public static TBuilder AnswerHeadLikeGet<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        // Finally: after the route's own conventions, so the methods MapGet gave it are known.
        builder.Finally(endpoint =>
        {
            if (endpoint.Metadata.OfType<HttpMethodMetadata>().LastOrDefault() is { } methods
                && methods.HttpMethods.Contains(HttpMethods.Get, StringComparer.OrdinalIgnoreCase)
                && !methods.HttpMethods.Contains(HttpMethods.Head, StringComparer.OrdinalIgnoreCase))
            {
                endpoint.Metadata.Add(new HttpMethodMetadata([.. methods.HttpMethods, HttpMethods.Head], methods.AcceptCorsPreflight));
            }
        });
        return builder;
    }
}

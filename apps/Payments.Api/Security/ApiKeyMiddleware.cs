using Payments.Api.Problems;
using Payments.Domain;
using Payments.Merchants;

namespace Payments.Api.Security;

/// <summary>Authenticates every <c>/v1</c> request by its <c>Authorization: Bearer &lt;api-key&gt;</c> and records
/// the merchant it belongs to; everything a merchant reads or writes is scoped to that merchant.</summary>
public sealed class ApiKeyMiddleware(RequestDelegate next)
{
    public const string MerchantItem = "merchant-id";
    private const string Scheme = "Bearer ";

    public async Task InvokeAsync(HttpContext context, MerchantStore store)
    {
        if (!context.Request.Path.StartsWithSegments("/v1"))
        {
            await next(context);
            return;
        }

        var header = context.Request.Headers.Authorization.ToString();
        var key = header.StartsWith(Scheme, StringComparison.Ordinal) ? header[Scheme.Length..].Trim() : null;
        var merchant = string.IsNullOrEmpty(key) || key.Length > 200 ? null : await store.MerchantForKeyAsync(key, context.RequestAborted);
        if (merchant is null)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
            await Reply.Problem(StatusCodes.Status401Unauthorized, ProblemTypes.Unauthorized, "A valid API key is required.",
                "Send Authorization: Bearer <api-key>.").ToResult().ExecuteAsync(context);
            return;
        }

        context.Items[MerchantItem] = merchant;
        await next(context);
    }

    public static string MerchantOf(HttpContext context) =>
        context.Items[MerchantItem] as string ?? throw new InvalidOperationException("The request was not authenticated.");
}

using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;
using Payments.ServiceDefaults.Security;

namespace Payments.Api.OpenApi;

/// <summary>Endpoint metadata: the JSON body an endpoint reads. The handlers read and check the bytes themselves, so
/// that every mistake is answered with our problem+json (415 unsupported-media-type, 400 malformed-request); ASP.NET's
/// own <c>Accepts</c> metadata would instead make routing answer a wrong Content-Type with a bare 415 before the
/// handler runs. This only tells the OpenAPI document (<see cref="ApiDocumentation"/>).</summary>
public sealed record JsonBody(Type Type, bool Required = true);

/// <summary>What the OpenAPI document says beyond the routes: request bodies (<see cref="JsonBody"/>), the answers
/// with their types (each endpoint's <c>Produces</c>), and how a caller authenticates — so a client generated from
/// <c>/openapi/v1.json</c> sends and expects what the API really does.</summary>
public static class ApiDocumentation
{
    public const string MerchantKeyScheme = "merchantApiKey";

    public const string OperatorTokenScheme = "operatorToken";

    /// <summary>The operator's document (<c>/openapi/admin.json</c>): the admin routes (their group name), which the
    /// merchants' document <c>v1</c> leaves out. It takes the operator's token, like the routes it describes, and the
    /// public edge does not route it.</summary>
    public const string AdminDocument = "admin";

    /// <summary>The filter on the OpenAPI endpoint: <see cref="AdminDocument"/> only with the operator's token
    /// (<see cref="OperatorAuthentication"/>); the merchants' document stays open, as a client generator needs it.</summary>
    public static async ValueTask<object?> AdminDocumentNeedsOperatorAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        return string.Equals(context.HttpContext.GetRouteValue("documentName") as string, AdminDocument, StringComparison.OrdinalIgnoreCase)
            ? await context.HttpContext.RequestServices.GetRequiredService<OperatorAuthentication>().InvokeAsync(context, next)
            : await next(context);
    }

    /// <summary>Documents the JSON request body <typeparamref name="TRequest"/> (see <see cref="JsonBody"/>).</summary>
    public static RouteHandlerBuilder JsonBody<TRequest>(this RouteHandlerBuilder builder, bool required = true) =>
        builder.WithMetadata(new JsonBody(typeof(TRequest), required));

    /// <summary>The problem+json answers an endpoint gives for the caller's mistakes, and the ones every endpoint may
    /// give (401 without a valid key, 403 without the scope, 429 rate-limited, 503 while etcd or the region is away).</summary>
    public static RouteHandlerBuilder Problems(this RouteHandlerBuilder builder, params int[] statusCodes)
    {
        foreach (var status in statusCodes.Concat([StatusCodes.Status401Unauthorized, StatusCodes.Status403Forbidden,
                     StatusCodes.Status429TooManyRequests, StatusCodes.Status503ServiceUnavailable]).Distinct())
        {
            builder.ProducesProblem(status);
        }

        return builder;
    }

    public static void Configure(OpenApiOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        // By default a document holds every route without a group name too: the operator's holds only its own. HEAD
        // (every GET route answers it: HeadRequests) is left out, as it would repeat each GET's operation id.
        var admin = options.DocumentName == AdminDocument;
        options.ShouldInclude = description => !HttpMethods.IsHead(description.HttpMethod ?? string.Empty)
            && (admin ? description.GroupName == AdminDocument : description.GroupName is null || description.GroupName == options.DocumentName);

        options.AddDocumentTransformer((document, _, _) =>
        {
            document.Info.Title = admin ? "DaprPayments API (admin)" : "DaprPayments API";
            // No servers: by default the document names the replica that served it (its internal address, a different
            // one per request behind the edge). Without, clients resolve paths against where they fetched it.
            document.Servers?.Clear();
            var scheme = admin ? OperatorTokenScheme : MerchantKeyScheme;
            document.Components ??= new OpenApiComponents();
            document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
            document.Components.SecuritySchemes[scheme] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http,
                Scheme = "bearer",
                Description = admin
                    ? "The operator's token: Authorization: Bearer <token>. Merchant keys are refused."
                    : "A merchant's API key (dp_live_… or dp_test_…): Authorization: Bearer <key>.",
            };
            document.Security ??= [];
            document.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(scheme, document)] = [] });
            return Task.CompletedTask;
        });
        options.AddOperationTransformer(async (operation, context, cancellationToken) =>
        {
            if (context.Description.ActionDescriptor.EndpointMetadata.OfType<JsonBody>().FirstOrDefault() is { } body)
            {
                operation.RequestBody = new OpenApiRequestBody
                {
                    Required = body.Required,
                    Content = new Dictionary<string, OpenApiMediaType>
                    {
                        ["application/json"] = new() { Schema = await context.GetOrCreateSchemaAsync(body.Type, null, cancellationToken) },
                    },
                };
            }
        });
    }
}

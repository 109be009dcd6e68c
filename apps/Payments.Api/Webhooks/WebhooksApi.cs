using System.Globalization;
using System.Text.RegularExpressions;
using Etcdserverpb;
using Microsoft.OpenApi;
using Payments.Api.Apis;
using Payments.Api.Idempotency;
using Payments.Api.Problems;
using Payments.Api.Security;
using Payments.Domain;
using Payments.Etcd;
using Payments.Merchants;
using Payments.Orchestrator.Client.Records;
using Payments.Api.OpenApi;

namespace Payments.Api.Webhooks;

public sealed record CreateWebhookEndpointRequest(string? Url, IReadOnlyList<string>? Events = null, string? Description = null);

public sealed record RotateWebhookSecretRequest(long? OverlapSeconds = null);

/// <summary>An endpoint as the API shows it; <paramref name="Secret"/> only in the answer that created it or rotated
/// its secret (the only times the merchant sees it).</summary>
public sealed record WebhookEndpointResponse(
    string Id, string Url, IReadOnlyList<string> Events, string? Description, DateTimeOffset CreatedAt, DateTimeOffset SecretCreatedAt, string? Secret = null);

public sealed record WebhookEndpointList(IReadOnlyList<WebhookEndpointResponse> Data);

/// <summary>A page of events; <paramref name="NextCursor"/> goes into <c>?after=</c> for the next page.</summary>
public sealed record EventPage(IReadOnlyList<PaymentEvent> Data, bool HasMore, string? NextCursor);

/// <summary><c>/v1/webhook-endpoints</c> (scope webhooks:manage) and <c>GET /v1/events</c> (scope payments:read).</summary>
public static partial class WebhooksApi
{
    public const int MaxDescriptionLength = 200;
    public const int MaxEventsPage = 100;

    public static void MapWebhooksApiV1(this IEndpointRouteBuilder app)
    {
        var endpoints = app.MapGroup("/v1/webhook-endpoints").WithTags("Webhooks");
        endpoints.MapPost("/", CreateAsync).WithName("CreateWebhookEndpoint").RequireScope(ApiScopes.WebhooksManage)
            .JsonBody<CreateWebhookEndpointRequest>().IdempotencyKeyHeader(required: false).Produces<WebhookEndpointResponse>(StatusCodes.Status201Created).Problems(400, 409, 413, 415, 422)
            .WithDescription("Scope webhooks:manage. {url (https, public host), events? (default all), description?}; 201 with the signing secret, shown this once. Idempotency-Key optional: with one, a retry gets the same endpoint.");
        endpoints.MapGet("/", ListAsync).WithName("ListWebhookEndpoints").RequireScope(ApiScopes.WebhooksManage)
            .Produces<WebhookEndpointList>().Problems();
        endpoints.MapGet("/{endpointId}", GetAsync).WithName("GetWebhookEndpoint").RequireScope(ApiScopes.WebhooksManage)
            .Produces<WebhookEndpointResponse>().Problems(404);
        endpoints.MapDelete("/{endpointId}", DeleteAsync).WithName("DeleteWebhookEndpoint").RequireScope(ApiScopes.WebhooksManage)
            .Produces(StatusCodes.Status204NoContent).Problems(404);
        endpoints.MapPost("/{endpointId}/rotate-secret", RotateAsync).WithName("RotateWebhookSecret").RequireScope(ApiScopes.WebhooksManage)
            .JsonBody<RotateWebhookSecretRequest>(required: false).Produces<WebhookEndpointResponse>().Problems(400, 404, 413, 415)
            .WithDescription("Scope webhooks:manage. {overlapSeconds? 0-86400, default 86400}: the old secret keeps signing (a second v1 signature) that long.");
        app.MapGet("/v1/events", ListEventsAsync).WithTags("Webhooks").WithName("ListEvents").RequireScope(ApiScopes.PaymentsRead)
            .Produces<EventPage>().Problems(400)
            .QueryParameter("after", "The nextCursor of the page before.", () => new OpenApiSchema { Type = JsonSchemaType.String })
            .QueryParameter("since", "Events from this time on (RFC 3339 with its offset); not with after.",
                () => new OpenApiSchema { Type = JsonSchemaType.String, Format = "date-time" })
            .QueryParameter("type", "Only events of this type.",
                () => new OpenApiSchema { Type = JsonSchemaType.String, Enum = [.. PaymentEvents.Types.Select(type => (System.Text.Json.Nodes.JsonNode)type)] })
            .QueryParameter("limit", "Events per page (default 50).",
                () => new OpenApiSchema { Type = JsonSchemaType.Integer, Minimum = "1", Maximum = MaxEventsPage.ToString(CultureInfo.InvariantCulture) })
            .WithDescription("Scope payments:read. The merchant's payment events, oldest first: ?after=<nextCursor> or ?since=<RFC 3339 time>, ?type=, ?limit=1-100 (default 50).");
    }

    /// <summary>An Idempotency-Key is optional here (an endpoint moves no money); with one, a retry gets the first answer
    /// again — the same endpoint and secret — instead of a second endpoint that would receive every event twice.</summary>
    private static async Task<IResult> CreateAsync(HttpContext context, WebhookEndpointStore store, WebhookOptions options, IdempotentExecutor idempotency)
    {
        var merchant = ApiKeyMiddleware.MerchantOf(context);
        if (!context.Request.Headers.ContainsKey(IdempotentExecutor.Header))
        {
            var (bytes, problem) = await RequestBody.ReadAsync(context);
            return (problem ?? await CreateEndpointAsync(merchant, bytes!, store, options, context.RequestAborted)).ToResult();
        }

        var (key, body, keyProblem) = await IdempotentExecutor.ReadRequestAsync(context);
        return keyProblem is not null
            ? keyProblem.ToResult()
            : (await idempotency.RunAsync(merchant, key!, "POST", context.Request.Path, body!,
                _ => CreateEndpointAsync(merchant, body!, store, options, context.RequestAborted), context.RequestAborted)).ToResult();
    }

    private static async Task<Reply> CreateEndpointAsync(string merchant, byte[] bytes, WebhookEndpointStore store, WebhookOptions options, CancellationToken cancellationToken)
    {
        var (request, parseProblem) = RequestBody.Parse<CreateWebhookEndpointRequest>(bytes);
        if (parseProblem is not null)
        {
            return parseProblem;
        }

        var errors = new Dictionary<string, string>();
        if (WebhookTargets.Problem(request!.Url, options.AllowLoopbackTargets) is { } urlProblem)
        {
            errors["url"] = urlProblem;
        }

        var events = request.Events ?? [];
        if (events.Count > PaymentEvents.Types.Count || events.Any(type => !PaymentEvents.Types.Contains(type, StringComparer.Ordinal)))
        {
            errors["events"] = "events must be a list of: " + string.Join(", ", PaymentEvents.Types) + " (empty or absent: all).";
        }

        Validate.Text("description", request.Description, MaxDescriptionLength, errors);

        if (errors.Count > 0)
        {
            return Reply.Invalid(errors);
        }

        var created = await store.CreateAsync(merchant, request.Url!, events.Distinct(StringComparer.Ordinal).ToArray(), request.Description, cancellationToken);
        return created is null
            ? Reply.Problem(StatusCodes.Status409Conflict, ProblemTypes.WebhookEndpointLimitReached, "Too many webhook endpoints.",
                $"A merchant may have {WebhookEndpointStore.MaxEndpointsPerMerchant} endpoints; delete one first.")
            : Reply.Json(StatusCodes.Status201Created, ToResponse(created, withSecret: true));
    }

    private static async Task<IResult> ListAsync(HttpContext context, WebhookEndpointStore store) =>
        Reply.Json(StatusCodes.Status200OK, new WebhookEndpointList(
            (await store.ListAsync(ApiKeyMiddleware.MerchantOf(context), context.RequestAborted)).Select(endpoint => ToResponse(endpoint, withSecret: false)).ToArray())).ToResult();

    private static async Task<IResult> GetAsync(string endpointId, HttpContext context, WebhookEndpointStore store) =>
        IsEndpointId(endpointId) && await store.GetAsync(ApiKeyMiddleware.MerchantOf(context), endpointId, context.RequestAborted) is { } endpoint
            ? Reply.Json(StatusCodes.Status200OK, ToResponse(endpoint, withSecret: false)).ToResult()
            : NotFound(endpointId).ToResult();

    private static async Task<IResult> DeleteAsync(string endpointId, HttpContext context, WebhookEndpointStore store) =>
        IsEndpointId(endpointId) && await store.DeleteAsync(ApiKeyMiddleware.MerchantOf(context), endpointId, context.RequestAborted)
            ? Results.NoContent()
            : NotFound(endpointId).ToResult();

    private static async Task<IResult> RotateAsync(string endpointId, HttpContext context, WebhookEndpointStore store)
    {
        var overlap = WebhookEndpointStore.MaxSecretOverlap;
        if (context.Request.ContentLength is > 0 || (context.Request.ContentLength is null && context.Request.ContentType is not null)) // an empty body is no body, as on the admin API
        {
            var (bytes, problem) = await RequestBody.ReadAsync(context);
            var (request, parseProblem) = problem is null ? RequestBody.Parse<RotateWebhookSecretRequest>(bytes!) : (null, problem);
            if (parseProblem is not null)
            {
                return parseProblem.ToResult();
            }

            if (request!.OverlapSeconds is { } seconds)
            {
                if (seconds < 0 || seconds > (long)WebhookEndpointStore.MaxSecretOverlap.TotalSeconds)
                {
                    return Reply.Invalid(new Dictionary<string, string>
                    {
                        ["overlapSeconds"] = $"overlapSeconds must be from 0 to {(long)WebhookEndpointStore.MaxSecretOverlap.TotalSeconds}.",
                    }).ToResult();
                }

                overlap = TimeSpan.FromSeconds(seconds);
            }
        }

        return IsEndpointId(endpointId) && await store.RotateSecretAsync(ApiKeyMiddleware.MerchantOf(context), endpointId, overlap, context.RequestAborted) is { } rotated
            ? Reply.Json(StatusCodes.Status200OK, ToResponse(rotated, withSecret: true)).ToResult()
            : NotFound(endpointId).ToResult();
    }

    private static WebhookEndpointResponse ToResponse(WebhookEndpoint endpoint, bool withSecret) =>
        new(endpoint.Id, endpoint.Url, endpoint.Events, endpoint.Description, endpoint.CreatedAt, endpoint.Secrets[0].CreatedAt,
            withSecret ? endpoint.Secrets[0].Secret : null);

    private static Reply NotFound(string endpointId) => Reply.Problem(StatusCodes.Status404NotFound, ProblemTypes.WebhookEndpointNotFound,
        "Webhook endpoint not found.", $"No webhook endpoint '{Reply.Echo(endpointId)}' for this merchant.");

    private static bool IsEndpointId(string id) => EndpointIdPattern().IsMatch(id);

    [GeneratedRegex(@"^we_[0-9a-f]{24}\z")] // \z: '$' would admit a trailing newline
    private static partial Regex EndpointIdPattern();
}

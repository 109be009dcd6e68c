using System.Globalization;
using System.Text.RegularExpressions;
using System.Text.Json;
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
        // An endpoint is sent every payment event (amounts, accounts, references): what payments:read guards, so
        // registering one needs it too — a key with webhooks:manage alone could point them at any host.
        endpoints.MapPost("/", CreateAsync).WithName("CreateWebhookEndpoint").RequireScope(ApiScopes.WebhooksManage).RequireScope(ApiScopes.PaymentsRead)
            .JsonBody<CreateWebhookEndpointRequest>().IdempotencyKeyHeader("it names the endpoint until the endpoint is deleted", required: false).Produces<WebhookEndpointResponse>(StatusCodes.Status201Created).LocationOfCreated("endpoint").Problems(400, 409, 413, 415, 422)
            .WithDescription("Scopes webhooks:manage and payments:read (the events carry payment data). {url (https, public host), events? (default all), description?}; 201 with the signing secret, shown this once. Idempotency-Key optional: with one, the key names the endpoint, and a retry gets that endpoint again instead of a second one (with its secret within 24 h of the creation and before any rotation, without it after).");
        endpoints.MapGet("/", ListAsync).WithName("ListWebhookEndpoints").RequireScope(ApiScopes.WebhooksManage)
            .Produces<WebhookEndpointList>().Problems();
        endpoints.MapGet("/{endpointId}", GetAsync).WithName("GetWebhookEndpoint").RequireScope(ApiScopes.WebhooksManage)
            .Produces<WebhookEndpointResponse>().Problems(404);
        endpoints.MapDelete("/{endpointId}", DeleteAsync).WithName("DeleteWebhookEndpoint").RequireScope(ApiScopes.WebhooksManage)
            .Produces(StatusCodes.Status204NoContent).Problems(400, 404, 413, 415);
        // The answer is the endpoint's signing secret, with which one can sign payment events the merchant's receiver
        // trusts: as much as registering an endpoint, so the same scopes.
        endpoints.MapPost("/{endpointId}/rotate-secret", RotateAsync).WithName("RotateWebhookSecret").RequireScope(ApiScopes.WebhooksManage).RequireScope(ApiScopes.PaymentsRead)
            .JsonBody<RotateWebhookSecretRequest>(required: false).IdempotencyKeyHeader("a retry of the last rotation gets its answer again (its secret within 24 h)", required: false).Produces<WebhookEndpointResponse>().Problems(400, 404, 409, 413, 415, 422)
            .WithDescription("Scopes webhooks:manage and payments:read (the secret signs payment events). {overlapSeconds? 0-86400, default 86400}: the old secret keeps signing (a second v1 signature) that long. Idempotency-Key optional: with one, a retry of the last rotation within 24 h gets its answer again instead of rotating twice (later, the endpoint without its secret); the same key with another overlapSeconds is 422 idempotency-key-reuse.");
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

    /// <summary>An Idempotency-Key is optional here (an endpoint moves no money); with one, the endpoint's id is the
    /// key's (<see cref="IdempotencyStore.OperationId"/>), so a retry finds the endpoint its first attempt created —
    /// however that attempt ended (a lost answer, a crash after the write, a claim that lapsed) — and answers it again
    /// (201, with the endpoint's current secret) instead of creating a second one that would be sent every event too.
    /// The key then names that endpoint until it is deleted: another body with it is 422. Nothing is written under the
    /// key itself: no second copy of the secret is kept (the 201 with the secret was stored with the key for 24 h), and
    /// a request refused as invalid (400) leaves the key free for the corrected one.</summary>
    private static async Task<IResult> CreateAsync(
        HttpContext context, WebhookEndpointStore store, WebhookOptions options, IdempotencyStore keys, TimeProvider time)
    {
        var merchant = ApiKeyMiddleware.MerchantOf(context);
        var keyed = context.Request.Headers.ContainsKey(IdempotentExecutor.Header);
        var (key, bytes, problem) = keyed ? await IdempotentExecutor.ReadRequestAsync(context) : (null, null, null);
        if (!keyed)
        {
            (bytes, problem) = await RequestBody.ReadAsync(context);
        }

        // Checked before the key is looked at: a 400 is nobody's answer to keep, and the corrected body may use the key.
        if ((problem is null ? Checked(bytes!, options, out problem) : null) is not { } valid)
        {
            return problem!.ToResult();
        }

        if (key is not null && await EarlierUseAsync(keys, merchant, key, context, bytes!) is { } earlier)
        {
            return earlier.ToResult();
        }

        var (url, events, description) = valid;
        var endpointId = key is null ? null : IdempotencyStore.OperationId(WebhookEndpointStore.IdPrefix, EndpointIdHexChars, merchant, key, variant: null);
        (WebhookEndpoint Endpoint, bool Created)? outcome;
        try
        {
            outcome = await store.CreateAsync(merchant, url, events, description, context.RequestAborted, endpointId);
        }
        catch (WebhookEndpointCreationsSpentException spent)
        {
            var seconds = (long)Math.Ceiling(Math.Max(1, (spent.NextDay - time.GetUtcNow()).TotalSeconds));
            context.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return Reply.Problem(StatusCodes.Status429TooManyRequests, ProblemTypes.RateLimited, "Too many requests.",
                $"Too many webhook endpoints created today: a merchant may create {WebhookEndpointStore.MaxCreationsPerDay} webhook endpoints per UTC day; the next day starts in {seconds} s.").ToResult();
        }

        if (outcome is not { Endpoint: var endpoint, Created: var created })
        {
            return Reply.Problem(StatusCodes.Status409Conflict, ProblemTypes.WebhookEndpointLimitReached, "Too many webhook endpoints.",
                $"A merchant may have {WebhookEndpointStore.MaxEndpointsPerMerchant} endpoints; delete one first.").ToResult();
        }

        // A retry is shown the secret only while the key's answer would have been kept (24 h) and the secret is still
        // the one made with the endpoint: a key is no credential (it sits in clients' and proxies' logs), and the
        // endpoint's current secret stays the answer of a rotation alone.
        var secretShown = created || (time.GetUtcNow() - endpoint.CreatedAt < IdempotencyStore.Retention && endpoint.Secrets[0].CreatedAt == endpoint.CreatedAt);
        var same = created || (endpoint.Url == url && endpoint.Events.SequenceEqual(events) && endpoint.Description == description);
        if (same)
        {
            context.Response.Headers.Location = "/v1/webhook-endpoints/" + Uri.EscapeDataString(endpoint.Id); // RFC 9110 15.3.2
        }

        return same
            ? Reply.Json(StatusCodes.Status201Created, ToResponse(endpoint, withSecret: secretShown)).ToResult()
            : Reply.Problem(StatusCodes.Status422UnprocessableEntity, ProblemTypes.IdempotencyKeyReuse, "This Idempotency-Key was used with a different request.",
                "This key created another webhook endpoint; use a new Idempotency-Key for a different endpoint.").ToResult();
    }

    /// <summary>What the key's record says, when it has one: a create from before endpoints took their key's id (its
    /// stored answer, 409 while it runs, or 422 when it was made from another body). A payment's or deposit's record
    /// under the same key is no answer (docs/api.md: the keys of creates are names of their own). New creates write no
    /// record, and records end within 24 h.</summary>
    private static async Task<Reply?> EarlierUseAsync(IdempotencyStore keys, string merchant, IdempotencyKey key, HttpContext context, byte[] bytes) =>
        await keys.PeekAsync(merchant, key, IdempotencyStore.Fingerprint("POST", "/v1/webhook-endpoints", Convert.ToBase64String(bytes)), context.RequestAborted) switch
        {
            IdempotencyBegin.Replay stored => new Reply(stored.StatusCode, stored.Body, stored.ContentType ?? Reply.JsonContentType),
            IdempotencyBegin.InProgress running => IdempotentExecutor.InUse(running.RetryAfter),
            IdempotencyBegin.FingerprintMismatch { OtherBody: var other } when IsEndpointAnswer(other) => Reply.Problem(StatusCodes.Status422UnprocessableEntity,
                ProblemTypes.IdempotencyKeyReuse, "This Idempotency-Key was used with a different request.", "Use a new Idempotency-Key for a different request."),
            _ => null, // a payment's or deposit's record (or one whose answer is unknown): the keys of creates are names of their own
        };

    /// <summary>Whether a stored answer is an endpoint's (a create from before the upgrade), not a payment's or deposit's.</summary>
    private static bool IsEndpointAnswer(string? body)
    {
        try
        {
            using var document = body is null ? null : JsonDocument.Parse(body);
            return document?.RootElement is { ValueKind: JsonValueKind.Object } root && root.TryGetProperty("id", out var id)
                && id.ValueKind == JsonValueKind.String && IsEndpointId(id.GetString()!);
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>Hex characters of an endpoint id's hash (the ids are <c>we_</c> and 24 hex characters either way).</summary>
    private const int EndpointIdHexChars = 24;

    /// <summary>The request's url, events (distinct) and description, or null with the problem when it is not a valid one.</summary>
    private static (string Url, string[] Events, string? Description)? Checked(byte[] bytes, WebhookOptions options, out Reply? problem)
    {
        var (request, parseProblem) = RequestBody.Parse<CreateWebhookEndpointRequest>(bytes);
        if (parseProblem is not null)
        {
            problem = parseProblem;
            return null;
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

        Validate.Text("description", request.Description, MaxDescriptionLength, errors); // not blank either

        problem = errors.Count > 0 ? Reply.Invalid(errors) : null;
        return problem is null ? (request.Url!, events.Distinct(StringComparer.Ordinal).ToArray(), request.Description) : null;
    }

    private static async Task<IResult> ListAsync(HttpContext context, WebhookEndpointStore store) =>
        Reply.Json(StatusCodes.Status200OK, new WebhookEndpointList(
            (await store.ListAsync(ApiKeyMiddleware.MerchantOf(context), context.RequestAborted)).Select(endpoint => ToResponse(endpoint, withSecret: false)).ToArray())).ToResult();

    private static async Task<IResult> GetAsync(string endpointId, HttpContext context, WebhookEndpointStore store) =>
        IsEndpointId(endpointId) && await store.GetAsync(ApiKeyMiddleware.MerchantOf(context), endpointId, context.RequestAborted) is { } endpoint
            ? Reply.Json(StatusCodes.Status200OK, ToResponse(endpoint, withSecret: false)).ToResult()
            : NotFound(endpointId).ToResult();

    private static async Task<IResult> DeleteAsync(string endpointId, HttpContext context, WebhookEndpointStore store) =>
        await RequestBody.NoFieldsProblemAsync(context) is { } refused ? refused.ToResult()
        : IsEndpointId(endpointId) && await store.DeleteAsync(ApiKeyMiddleware.MerchantOf(context), endpointId, context.RequestAborted)
            ? Results.NoContent()
            : NotFound(endpointId).ToResult();

    private static async Task<IResult> RotateAsync(string endpointId, HttpContext context, WebhookEndpointStore store, TimeProvider time)
    {
        var overlap = WebhookEndpointStore.MaxSecretOverlap;
        var (bytes, bodyProblem) = await RequestBody.ReadOptionalAsync(context); // an empty body is no body, as on the admin API
        if (bodyProblem is not null || bytes is not null)
        {
            var (request, parseProblem) = bodyProblem is null ? RequestBody.Parse<RotateWebhookSecretRequest>(bytes!) : (null, bodyProblem);
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

        // An optional Idempotency-Key: a retry of a rotation whose answer was lost gets that answer, not a second rotation.
        var merchant = ApiKeyMiddleware.MerchantOf(context);
        string? rotationKey = null;
        if (context.Request.Headers.ContainsKey(IdempotentExecutor.Header))
        {
            var (key, keyProblem) = IdempotentExecutor.KeyOf(context);
            if (keyProblem is not null)
            {
                return keyProblem.ToResult();
            }

            rotationKey = IdempotencyStore.OperationId("rot_", EndpointIdHexChars, merchant, key!, variant: endpointId);
        }

        // A retry sees the secret only while the key's answer would have been kept (24 h), as for creates: a key is no
        // credential (it sits in clients' and proxies' logs), and the rotation's answer was the current secret for good.
        WebhookEndpoint? rotated;
        try
        {
            rotated = IsEndpointId(endpointId) ? await store.RotateSecretAsync(merchant, endpointId, overlap, context.RequestAborted, rotationKey) : null;
        }
        catch (IdempotencyKeyReusedException)
        {
            return Reply.Problem(StatusCodes.Status422UnprocessableEntity, ProblemTypes.IdempotencyKeyReuse, "This Idempotency-Key was used with a different request.",
                "This key rotated the secret with another overlapSeconds; use a new Idempotency-Key for a new rotation.").ToResult();
        }
        catch (RotationSupersededException)
        {
            return Reply.Problem(StatusCodes.Status409Conflict, ProblemTypes.RotationSuperseded, "Another rotation followed the one this Idempotency-Key made.",
                "The secret this key's rotation made is no longer the newest, and nothing was rotated now; use the newest secret, or a new Idempotency-Key for a new rotation.").ToResult();
        }

        return rotated is not null
            ? Reply.Json(StatusCodes.Status200OK, ToResponse(rotated, withSecret: time.GetUtcNow() - rotated.Secrets[0].CreatedAt < IdempotencyStore.Retention)).ToResult()
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

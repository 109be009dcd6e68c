using System.Text.Json;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;
using Payments.Api.Apis;
using Payments.Domain;
using Payments.Orchestrator.Client.Records;
using Payments.ServiceDefaults.Security;

namespace Payments.Api.OpenApi;

/// <summary>Endpoint metadata: the JSON body an endpoint reads. The handlers read and check the bytes themselves, so
/// that every mistake is answered with our problem+json (415 unsupported-media-type, 400 malformed-request); ASP.NET's
/// own <c>Accepts</c> metadata would instead make routing answer a wrong Content-Type with a bare 415 before the
/// handler runs. This only tells the OpenAPI document (<see cref="ApiDocumentation"/>).</summary>
public sealed record JsonBody(Type Type, bool Required = true);

/// <summary>Endpoint metadata: a query or header parameter the handler reads from the request itself (so ASP.NET
/// cannot see it in the handler's signature). Only for the OpenAPI document: a generated client that does not know the
/// Idempotency-Key header cannot make a payment at all.</summary>
public sealed record DocumentedParameter(string Name, ParameterLocation In, bool Required, string Description, Func<OpenApiSchema> Schema);

/// <summary>Endpoint metadata: its 201 answer carries Location, the path of what it created (RFC 9110 §15.3.2).</summary>
public sealed record CreatedAtLocation(string Of);

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

    /// <summary>The merchants' document (<c>/openapi/v1.json</c>), open to anyone.</summary>
    public const string MerchantDocument = "v1";

    /// <summary>The filter on the OpenAPI endpoint: <see cref="AdminDocument"/> only with the operator's token
    /// (<see cref="OperatorAuthentication"/>); the merchants' document stays open, as a client generator needs it.</summary>
    /// <remarks>A document name the API does not have is <c>not-found</c> problem+json here: the OpenAPI library's
    /// own answer was a text/plain 404.</remarks>
    public static async ValueTask<object?> AdminDocumentNeedsOperatorAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        var name = context.HttpContext.GetRouteValue("documentName") as string;
        if (string.Equals(name, AdminDocument, StringComparison.OrdinalIgnoreCase))
        {
            return await context.HttpContext.RequestServices.GetRequiredService<OperatorAuthentication>().InvokeAsync(context, next);
        }

        return string.Equals(name, MerchantDocument, StringComparison.OrdinalIgnoreCase)
            ? await next(context)
            : Payments.Api.Problems.Reply.Problem(StatusCodes.Status404NotFound, ProblemTypes.NotFound, "Not found.",
                $"No OpenAPI document by that name; the API's is /openapi/{MerchantDocument}.json.").ToResult();
    }

    /// <summary>Documents the JSON request body <typeparamref name="TRequest"/> (see <see cref="JsonBody"/>).</summary>
    public static RouteHandlerBuilder JsonBody<TRequest>(this RouteHandlerBuilder builder, bool required = true) =>
        builder.WithMetadata(new JsonBody(typeof(TRequest), required));

    /// <summary>Documents the Idempotency-Key header (see <see cref="IdempotencyKey"/> for its form); <paramref name="lives"/>
    /// says how long a key names what it made (each endpoint's own rule, as docs/api.md gives it: a probe found one
    /// "kept 24 h" for all, which said otherwise for deposits and webhook endpoints).</summary>
    public static RouteHandlerBuilder IdempotencyKeyHeader(this RouteHandlerBuilder builder, string lives, bool required = true) =>
        builder.WithMetadata(new DocumentedParameter("Idempotency-Key", ParameterLocation.Header, required,
            (required ? "Unique per new request" : "Optional. Unique per new request")
                + $", the same on every retry of it; {lives}. The same key with another body is 422 idempotency-key-reuse.",
            () => new OpenApiSchema { Type = JsonSchemaType.String, MinLength = 1, MaxLength = IdempotencyKey.MaxLength, Pattern = "^[!-~]+$" }));

    /// <summary>Documents the Location header of the endpoint's 201 (see <see cref="CreatedAtLocation"/>).</summary>
    public static RouteHandlerBuilder LocationOfCreated(this RouteHandlerBuilder builder, string of) => builder.WithMetadata(new CreatedAtLocation(of));

    /// <summary>Documents a query parameter the handler reads itself.</summary>
    public static RouteHandlerBuilder QueryParameter(this RouteHandlerBuilder builder, string name, string description, Func<OpenApiSchema> schema) =>
        builder.WithMetadata(new DocumentedParameter(name, ParameterLocation.Query, false, description, schema));

    /// <summary>The problem+json answers an endpoint gives for the caller's mistakes, and the ones every endpoint may
    /// give (401 without a valid key, 403 without the scope, 429 rate-limited, 503 while etcd or the region is away).</summary>
    public static RouteHandlerBuilder Problems(this RouteHandlerBuilder builder, params int[] statusCodes)
    {
        // 400 on every route too: a malformed Idempotency-Key is refused wherever it is sent.
        foreach (var status in statusCodes.Concat([StatusCodes.Status400BadRequest, StatusCodes.Status401Unauthorized, StatusCodes.Status403Forbidden,
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
        // ASP.NET documents the serializer's defaults, not what the API writes: answers leave out null members
        // (ApiJson.Output), so a nullable member is optional and never null. The answers' types are the components
        // (request bodies are inline, RequestMembers); only a document transformer sees them with their final form.
        options.AddDocumentTransformer((document, _, _) =>
        {
            DescribeAnswers(document);
            return Task.CompletedTask;
        });
        options.AddOperationTransformer(async (operation, context, cancellationToken) =>
        {
            var metadata = context.Description.ActionDescriptor.EndpointMetadata;
            AnswerHeaders(operation, metadata.OfType<CreatedAtLocation>().FirstOrDefault());
            foreach (var parameter in metadata.OfType<DocumentedParameter>())
            {
                operation.Parameters ??= [];
                operation.Parameters.Add(new OpenApiParameter
                {
                    Name = parameter.Name, In = parameter.In, Required = parameter.Required, Description = parameter.Description, Schema = parameter.Schema(),
                });
            }

            if (metadata.OfType<JsonBody>().FirstOrDefault() is { } body)
            {
                var schema = await context.GetOrCreateSchemaAsync(body.Type, null, cancellationToken);
                if (schema is OpenApiSchema inline)
                {
                    RequestMembers(inline, body.Type);
                }

                operation.RequestBody = new OpenApiRequestBody
                {
                    Required = body.Required,
                    Content = new Dictionary<string, OpenApiMediaType> { ["application/json"] = new() { Schema = schema } },
                };
            }
        });
    }

    /// <summary>429 and 503 carry Retry-After (whole seconds): a generated client that knows it waits as told; 401
    /// carries WWW-Authenticate, and a 201 the Location of what it created (a probe: docs/api.md promised them, the
    /// document did not say so).</summary>
    private static void AnswerHeaders(OpenApiOperation operation, CreatedAtLocation? created)
    {
        if (operation.Responses?.TryGetValue("401", out var refused) == true && refused is OpenApiResponse unauthorized)
        {
            unauthorized.Headers ??= new Dictionary<string, IOpenApiHeader>();
            unauthorized.Headers["WWW-Authenticate"] = new OpenApiHeader
            {
                Description = "Bearer: send Authorization: Bearer <key>.", Schema = new OpenApiSchema { Type = JsonSchemaType.String },
            };
        }

        if (created is not null && operation.Responses?.TryGetValue("201", out var made) == true && made is OpenApiResponse createdAnswer)
        {
            createdAnswer.Headers ??= new Dictionary<string, IOpenApiHeader>();
            createdAnswer.Headers["Location"] = new OpenApiHeader
            {
                Description = $"The path of the {created.Of} created (percent-encoded).", Required = true, Schema = new OpenApiSchema { Type = JsonSchemaType.String },
            };
        }

        foreach (var status in new[] { "429", "503" })
        {
            if (operation.Responses?.TryGetValue(status, out var answer) == true && answer is OpenApiResponse response)
            {
                response.Headers ??= new Dictionary<string, IOpenApiHeader>();
                response.Headers["Retry-After"] = new OpenApiHeader
                {
                    Description = "Seconds to wait before retrying (with the same Idempotency-Key for writes).",
                    Schema = new OpenApiSchema { Type = JsonSchemaType.Integer, Minimum = "1" },
                };
            }
        }
    }

    /// <summary>Members a problem may carry besides RFC 9457's (docs/api.md names them with the types that have them).</summary>
    private static readonly (string Name, string Description, Func<OpenApiSchema> Schema)[] ProblemMembers =
    [
        ("errors", "validation-failed: each field or query value that breaks its rule, with why.",
            () => new OpenApiSchema { Type = JsonSchemaType.Object, AdditionalProperties = new OpenApiSchema { Type = JsonSchemaType.String } }),
        ("requiredScope", "insufficient-scope: the scope the route needs.", () => new OpenApiSchema { Type = JsonSchemaType.String }),
        ("retryAfterSeconds", "idempotency-key-in-use: seconds until the first request's claim lapses.", () => new OpenApiSchema { Type = JsonSchemaType.Integer }),
        ("maxPaymentsInFlight", "too-many-payments-in-flight: the merchant's bound.", () => new OpenApiSchema { Type = JsonSchemaType.Integer }),
        ("maxAmountMinor", "amount-limit-exceeded: the largest amount, in minor units.", () => new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int64" }),
        ("maxDepositVolumePerDayMinor", "deposit-volume-exceeded: the day's bound, in minor units.", () => new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int64" }),
        ("maxOverdraftMinor", "overdraft-limit-exceeded: the largest overdraft limit, in minor units.", () => new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int64" }),
    ];

    /// <summary>The answers' types as the API writes them (see <see cref="NullableMembersAreOmitted"/>), and a payment's
    /// status as the enum of its five words, so a generated client can make a type of it.</summary>
    private static void DescribeAnswers(OpenApiDocument document)
    {
        foreach (var (name, schema) in document.Components?.Schemas ?? new Dictionary<string, IOpenApiSchema>())
        {
            if (schema is not OpenApiSchema inline)
            {
                continue;
            }

            NullableMembersAreOmitted(inline);
            if (name == "ProblemDetails")
            {
                inline.Properties ??= new Dictionary<string, IOpenApiSchema>();
                foreach (var (extension, description, schemaOf) in ProblemMembers)
                {
                    var described = schemaOf();
                    described.Description = description;
                    inline.Properties[extension] = described;
                }
            }

            // A payment's status is one of five words and an event's type one of four: a generated client can make
            // enums of them.
            (string? member, IReadOnlyList<string> values) = name switch
            {
                "PaymentResponse" or "PaymentAccepted" or "PaymentEventData" => ("status", PaymentStatus.All),
                "PaymentEvent" => ("type", PaymentEvents.Types),
                _ => (null, Array.Empty<string>()),
            };
            if (member is not null && inline.Properties is { } members && members.TryGetValue(member, out var found) && found is OpenApiSchema words)
            {
                words.Enum = [.. values.Select(value => (System.Text.Json.Nodes.JsonNode)value)];
            }
        }
    }

    /// <summary>A member that may be null is written only when it has a value: not required, and never null.</summary>
    private static void NullableMembersAreOmitted(OpenApiSchema schema)
    {
        foreach (var (name, member) in schema.Properties?.ToArray() ?? [])
        {
            if (member is not OpenApiSchema inline)
            {
                continue;
            }

            if (inline.Type is { } type && type != JsonSchemaType.Null && type.HasFlag(JsonSchemaType.Null))
            {
                inline.Type = type & ~JsonSchemaType.Null;
                schema.Required?.Remove(name);
            }
            else if (inline.OneOf is { Count: > 1 } options && options.FirstOrDefault(option => option.Type == JsonSchemaType.Null) is { } isNull)
            {
                options.Remove(isNull);
                schema.Properties![name] = options.Count == 1 ? options[0] : inline;
                schema.Required?.Remove(name);
            }
        }
    }

    /// <summary>A request body's members as the handlers check them: the record's parameters without a default are
    /// required, and a null there is refused as missing; the ones with a default are optional, and null means absent.</summary>
    private static void RequestMembers(OpenApiSchema schema, Type type)
    {
        schema.AdditionalPropertiesAllowed = false; // a member the request does not have is refused (malformed-request)
        var parameters = type.GetConstructors().MaxBy(constructor => constructor.GetParameters().Length)?.GetParameters() ?? [];
        schema.Required = new HashSet<string>(
            parameters.Where(parameter => !parameter.HasDefaultValue).Select(parameter => JsonNamingPolicy.CamelCase.ConvertName(parameter.Name!)));
        foreach (var parameter in parameters)
        {
            if (schema.Properties is { } members && members.TryGetValue(JsonNamingPolicy.CamelCase.ConvertName(parameter.Name!), out var member)
                && member is OpenApiSchema { Type: { } memberType } inline)
            {
                inline.Type = parameter.HasDefaultValue ? memberType | JsonSchemaType.Null : memberType & ~JsonSchemaType.Null;
                MemberRules(type, JsonNamingPolicy.CamelCase.ConvertName(parameter.Name!), inline);
            }
        }
    }

    /// <summary>A request member's rules as the handlers check them (a 400 otherwise), so that a generated client can
    /// check them first (the black-box probe found the document naming none). A free text's bound is in characters as a
    /// person counts them, which JSON Schema cannot say: its <c>maxLength</c> is the UTF-16 units it may take in all,
    /// never below what is accepted, and the description says the rest. Limits an operator sets (money limits, 422)
    /// are not schema.</summary>
    private static void MemberRules(Type request, string name, OpenApiSchema member)
    {
        const string Identifier = "^[A-Za-z0-9][A-Za-z0-9._:-]*$";
        switch (name)
        {
            case "amountMinor":
                (member.Minimum, member.Maximum) = ("1", Validate.MaxAmountMinor.ToString(System.Globalization.CultureInfo.InvariantCulture));
                break;
            case "overdraftLimitMinor" when request == typeof(Contracts.OpenAccountRequest):
                member.Minimum = "0";
                member.Description = "Only 0 (or absent): overdrafts are the operator's (403 overdraft-set-by-operator).";
                break;
            case "currency":
                member.Pattern = "^[A-Z]{3}$";
                member.Description = "An active ISO 4217 code in upper case.";
                break;
            case "accountId" or "debtorAccountId" or "creditorAccountId":
                (member.MinLength, member.MaxLength, member.Pattern) = (1, AccountId.MaxLength, Identifier);
                break;
            case "reference":
                member.MaxLength = PaymentsApi.MaxReferenceLength * Validate.MaxUnitsPerCharacter;
                // No minLength, as for description: payments accepted before blank ones were refused keep theirs.
                member.Description = $"At most {PaymentsApi.MaxReferenceLength} characters as a person counts them (an emoji is one), not blank in a request (leave it out for none), no control or invisible characters or noncharacters.";
                break;
            case "description":
                // No minLength: the schema is the answer's too, and endpoints made before blank ones were refused keep theirs.
                member.MaxLength = Webhooks.WebhooksApi.MaxDescriptionLength * Validate.MaxUnitsPerCharacter;
                member.Description = $"At most {Webhooks.WebhooksApi.MaxDescriptionLength} characters as a person counts them, not blank in a request (leave it out for none), no control or invisible characters or noncharacters.";
                break;
            case "url":
                (member.MinLength, member.MaxLength) = (1, Webhooks.WebhookTargets.MaxUrlLength);
                break;
            case "events":
                member.MaxItems = PaymentEvents.Types.Count;
                if (member.Items is OpenApiSchema item)
                {
                    item.Enum = [.. PaymentEvents.Types.Select(value => (System.Text.Json.Nodes.JsonNode)value)];
                }

                break;
            case "overlapSeconds":
                var overlap = request == typeof(Webhooks.RotateWebhookSecretRequest) ? Webhooks.WebhookEndpointStore.MaxSecretOverlap : Payments.Merchants.MerchantStore.MaxRotationOverlap;
                (member.Minimum, member.Maximum) = ("0", ((long)overlap.TotalSeconds).ToString(System.Globalization.CultureInfo.InvariantCulture));
                break;
            case "overdraftLimitMinor" when request == typeof(Contracts.SetOverdraftRequest):
                member.Minimum = "0";
                break;
            case "merchantId":
                (member.MinLength, member.MaxLength, member.Pattern) = (1, AccountId.MaxLength, "^[A-Za-z0-9][A-Za-z0-9_-]*$");
                break;
            case "name":
                member.MaxLength = Payments.Merchants.MerchantRecord.MaxNameLength;
                member.Description = $"At most {Payments.Merchants.MerchantRecord.MaxNameLength} UTF-16 code units (an emoji is two), no control or invisible characters.";
                break;
            case "scopes":
                member.MinItems = 1;
                if (member.Items is OpenApiSchema scope)
                {
                    scope.Enum = [.. Payments.Merchants.ApiScopes.All.Select(value => (System.Text.Json.Nodes.JsonNode)value)];
                }

                break;
        }
    }
}

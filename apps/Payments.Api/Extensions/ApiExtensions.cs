using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.RateLimiting;
using Payments.Api.Apis;
using Payments.Api.Idempotency;
using Payments.Api.Limits;
using Payments.Api.Problems;
using Payments.Api.Regions;
using Payments.Api.Security;
using Payments.Api.Webhooks;
using Payments.Domain;
using Payments.Cosmos;
using Payments.Etcd;
using Payments.Etcd.Regions;
using Payments.Ledger.Client;
using Payments.Ledger.Contracts;
using Payments.Merchants;
using Payments.Orchestrator.Client.Gateway;
using Payments.Orchestrator.Client.Records;
using Payments.ServiceDefaults;
using Payments.ServiceDefaults.Security;

namespace Payments.Api.Extensions;

public static class ApiExtensions
{
    /// <summary>Header lines a proxy in front may add to a request within the public limits (the edge adds up to 5).</summary>
    public const int ForwardingHeadersAllowance = 16;

    /// <summary>Header bytes a proxy in front may add (an X-Forwarded-For chain, trace context).</summary>
    public const int ForwardingBytesAllowance = 4 * 1024;

    /// <summary>Composition of the API: etcd-backed stores, the ledger and the orchestrator through bounded
    /// invocation clients, rate limits, OpenAPI.</summary>
    public static void AddPaymentsApi(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = (builder.Configuration.GetSection(EtcdOptions.Section).Get<ApiOptions>() ?? new ApiOptions()).Validate();
        var etcd = builder.Configuration.GetSection(EtcdOptions.Section).Get<EtcdOptions>() ?? new EtcdOptions();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = RequestBody.MaxBytes * 4L; // RequestBody enforces the exact limit with a problem reply
            // Clients' header limits are the edge's (Kestrel's defaults, docs/api.md); what reaches a replica also carries
            // what the edge adds (X-Forwarded-*, traceparent). At the same limits a request within them was refused
            // here with 431 (a probe: 98 lines, or 32.5 KB).
            kestrel.Limits.MaxRequestHeaderCount += ForwardingHeadersAllowance;
            kestrel.Limits.MaxRequestHeadersTotalSize += ForwardingBytesAllowance;
        });

        var services = builder.Services;
        services.AddSingleton(options);
        services.AddSingleton<Limits.RequestsInFlight>(); // one count per replica
        services.AddSingleton<Limits.AccountClaimTurns>();
        services.AddSingleton((builder.Configuration.GetSection(MoneyLimits.Section).Get<MoneyLimits>() ?? new MoneyLimits()).Validate());
        // A region of a two-region deployment accepts writes only while it is the active region.
        var region = new RegionGate(builder.Configuration.IsRegional());
        services.AddSingleton(region);
        services.AddEtcd(etcd, region.Enabled);
        AddStores(services, etcd);
        AddWebhooks(services, builder.Configuration, etcd);
        AddArchive(services, builder.Configuration.GetSection(CosmosSettings.Section).Get<CosmosSettings>() ?? new CosmosSettings());
        // The ledger and the orchestrator: Dapr service invocation on Kubernetes, their own processes locally; either
        // way each call carries the API's service identity (the public API itself authenticates merchants instead).
        var identity = ServiceIdentityOptions.From(builder.Configuration);
        services.AddInvocationClient<ILedger, HttpLedger>(options.LedgerUrl!, ApiOptions.LedgerCallTimeout, identity, ServiceRoles.Ledger);
        services.AddInvocationClient<IPaymentWorkflows, HttpPaymentWorkflows>(options.OrchestratorUrl!, ApiOptions.OrchestratorCallTimeout, identity, ServiceRoles.Orchestrator);
        services.AddSingleton<PaymentServices>();
        // The operator's credential for /admin/v1 (merchants and keys); without one the admin API is off (404
        // admin-not-configured). Read now, not at the first admin request: a token too short stops the start, as in
        // the failover service, and a missing one must leave nothing registered (a factory returning null made every
        // admin request fail to build its filter: 500).
        if (OperatorCredential.From(builder.Configuration) is { } operatorCredential)
        {
            services.AddSingleton(operatorCredential);
        }

        services.AddSingleton<OperatorAuthentication>();
        services.AddHostedService<ApiKeyUpkeep>();
        // Client addresses for the per-address limit: X-Forwarded-For only from proxies we trust (the edge, the
        // ingress controller), else anyone could pick the address their requests are counted under.
        services.Configure<Microsoft.AspNetCore.Builder.ForwardedHeadersOptions>(forwarded =>
        {
            forwarded.ForwardedHeaders = Microsoft.AspNetCore.HttpOverrides.ForwardedHeaders.XForwardedFor;
            forwarded.ForwardLimit = 1;
            foreach (var network in options.TrustedProxyNetworks)
            {
                forwarded.KnownIPNetworks.Add(System.Net.IPNetwork.Parse(network));
            }
        });
        // Two documents: v1 (/openapi/v1.json) for merchants, admin (/openapi/admin.json, operator token) for operators,
        // so a client generated for merchants holds no admin operations (ApiDocumentation).
        // The OpenAPI document describes types with these settings: the API reads amounts as JSON numbers only
        // (ApiJson.Strict), so the document must not offer quoted ones.
        services.ConfigureHttpJsonOptions(json => json.SerializerOptions.NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.Strict);
        services.AddOpenApi(Payments.Api.OpenApi.ApiDocumentation.Configure);
        services.AddOpenApi(Payments.Api.OpenApi.ApiDocumentation.AdminDocument, Payments.Api.OpenApi.ApiDocumentation.Configure);
        services.AddProblemDetails();
        services.AddRateLimiter(limiter => ConfigureRateLimits(limiter, options));
    }

    /// <summary>A request to the API or the operator's routes that reached the TLS entrance over plain HTTP — as the
    /// entrance itself says, X-Forwarded-Proto (its last value: the nearest proxy's) — refused before its key is looked
    /// at, saying the key went in cleartext. Requests that did not come through an entrance (helm test's pod, an
    /// operator's port-forward: the NetworkPolicy decides who reaches the port) carry no such header and pass; a client
    /// that sends the header itself can only refuse its own request. Health probes and the OpenAPI document carry no
    /// credential.</summary>
    private static async Task RefusePlainHttpAsync(HttpContext context, Func<Task> next)
    {
        var forwardedProto = context.Request.Headers["X-Forwarded-Proto"].ToString().Split(',')[^1].Trim();
        if (string.Equals(forwardedProto, "http", StringComparison.OrdinalIgnoreCase)
            && (context.Request.Path.StartsWithSegments("/v1") || context.Request.Path.StartsWithSegments("/admin")))
        {
            await Reply.Problem(StatusCodes.Status403Forbidden, ProblemTypes.HttpsRequired, "This API is served over HTTPS only.",
                "Send requests to the https:// address. The credential this request carried crossed the network unencrypted: rotate it.")
                .ToResult().ExecuteAsync(context);
            return;
        }

        await next();
    }

    public static void UsePaymentsApi(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.Use(HeadersOfEveryAnswer);
        app.UseExceptionHandler(new ExceptionHandlerOptions
        {
            ExceptionHandler = WriteUnhandledAsync,
            // Expected answers, not faults: a stack trace each (ASP.NET Core's error log) let any merchant fill the log
            // by racing its own requests; WriteUnhandledAsync logs them in a line.
            // A request Kestrel found bad (a body too slow, too large, cut short) is the caller's: answered 408/413/400,
            // it was logged as "An unhandled exception has occurred" with a stack trace — the line the runbook
            // (api-errors.md) calls a defect of ours (a probe).
            // A caller gone meanwhile is told nothing, so nothing is logged for it either.
            SuppressDiagnosticsCallback = suppress => IsExpected(suppress.Exception, suppress.HttpContext) || Payments.ServiceDefaults.UnreadableBodies.IsCallers(suppress.Exception)
                                                      || suppress.HttpContext.RequestAborted.IsCancellationRequested,
        });
        // A status with no body (no route: 404; a route without this method: 405, its Allow header kept) is
        // problem+json with a stable type of ours whatever the client accepts, like every other refusal.
        app.UseStatusCodePages(async pages =>
        {
            var status = pages.HttpContext.Response.StatusCode;
            var (type, title) = status switch
            {
                StatusCodes.Status404NotFound => (ProblemTypes.NotFound, "Not found."),
                StatusCodes.Status405MethodNotAllowed => (ProblemTypes.MethodNotAllowed, "This method is not allowed here; the Allow header lists those that are."),
                _ => (ProblemTypes.ForStatus(status), Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status)),
            };
            await Reply.Problem(status, type, title).ToResult().ExecuteAsync(pages.HttpContext);
        });
        app.Use(Payments.ServiceDefaults.MethodNames.RefuseUnimplementedAsync); // "post" is no POST (routing ignores case)
        app.Use(Payments.ServiceDefaults.MessageFraming.RefuseFaultyAsync); // an ingress talks to the API directly
        OperatorAuthentication.KeepConnectionAddress(app); // for the operator's check: not what X-Forwarded-For says
        app.UseForwardedHeaders();
        if (app.Services.GetRequiredService<ApiOptions>().RequireHttps)
        {
            app.Use(RefusePlainHttpAsync);
        }

        OperatorAuthentication.UseOperatorAuthenticationForAdmin(app); // before routing answers an admin path 404/405
        app.UseMiddleware<ApiKeyMiddleware>();
        app.Use(Idempotency.IdempotentExecutor.RefuseInvalidKeyAsync);
        app.UseMiddleware<RegionWriteGate>();
        app.UseRateLimiter();
        app.UseMiddleware<Limits.RequestsInFlight>(); // after the key and its rate: see its remarks
        var routes = app.MapGroup(string.Empty).AnswerHeadLikeGet();
        routes.AddEndpointFilter(Payments.Api.Apis.Validate.RefuseQueryWhereNoneIsTakenAsync);
        routes.MapOpenApi().AddEndpointFilter(Payments.Api.OpenApi.ApiDocumentation.AdminDocumentNeedsOperatorAsync);
        // Readiness: etcd reachable, the API keys loaded (a restarted replica knows every valid key before it takes a
        // request) and, in a region, the region active — the global load balancer routes clients to the region that is ready.
        routes.MapHealthEndpoints(
            async (services, cancellationToken) =>
                services.GetRequiredService<MerchantStore>().KeysLoaded
                && await services.IsEtcdReachableAsync(cancellationToken)
                && (!services.GetRequiredService<RegionGate>().Enabled || services.GetRequiredService<RegionEpochWatcher>().IsWritable),
            // The kubelet's readiness (the chart): the keys loaded, so a replica's first requests find valid keys held.
            services => services.GetRequiredService<MerchantStore>().KeysLoaded);
        app.MapMetricsEndpoint();
        routes.MapAccountsApiV1();
        routes.MapPaymentsApiV1();
        routes.MapAdminApiV1();
        routes.MapWebhooksApiV1();
    }

    /// <summary>Balances, payments and signing secrets are nobody's to keep: no cache (a browser's, a proxy's) stores an
    /// answer, and none is read as anything but its declared type.</summary>
    private static Task HeadersOfEveryAnswer(HttpContext context, RequestDelegate next)
    {
        // When the answer starts: the exception handler clears the headers of a response it replaces.
        context.Response.OnStarting(() =>
        {
            context.Response.Headers.CacheControl = "no-store";
            context.Response.Headers.XContentTypeOptions = "nosniff";
            // Every 503 and 429 says when to come back (as the OpenAPI document promises), whichever code answered.
            if (context.Response.StatusCode is StatusCodes.Status503ServiceUnavailable or StatusCodes.Status429TooManyRequests
                && string.IsNullOrEmpty(context.Response.Headers.RetryAfter))
            {
                context.Response.Headers.RetryAfter = "1";
            }

            return Task.CompletedTask;
        });
        return next(context);
    }

    /// <summary>The archive of finished payment records (Cosmos DB, regions only): read when etcd has no record. No
    /// call at start-up — the API starts and takes payments while Cosmos DB is away; only reads of archived payments
    /// wait for it. Without Cosmos DB nothing is archived, and nothing is read.</summary>
    private static void AddArchive(IServiceCollection services, CosmosSettings cosmos)
    {
        if (!cosmos.IsConfigured)
        {
            services.AddSingleton(new ArchivedPayments(null));
            return;
        }

        services.AddSingleton(_ => cosmos.CreateClient()); // created by a factory: disposed with the container
        services.AddSingleton(provider => new ArchivedPayments(
            new RecordArchive(provider.GetRequiredService<Microsoft.Azure.Cosmos.CosmosClient>().GetContainer(cosmos.Database, cosmos.ArchiveContainer), cosmos.ServerErrorMeansMissing)));
    }

    private static void AddStores(IServiceCollection services, EtcdOptions etcd)
    {
        services.AddSingleton(provider => new MerchantStore(
            provider.GetRequiredService<EtcdConnection>(), etcd.ApiPrefix, provider.GetRequiredService<TimeProvider>(),
            provider.GetRequiredService<ApiOptions>().KeyMode)
        {
            RegionFence = provider.GetRequiredService<RegionGate>().Enabled ? provider.GetRequiredService<RegionEpochWatcher>().CurrentFence : null,
        });
        services.AddSingleton(provider => new PaymentRecordStore(provider.GetRequiredService<EtcdConnection>(), etcd.PaymentsPrefix)
        {
            OutboxPrefix = etcd.WebhookOutboxPrefix,
            RegionFence = provider.GetRequiredService<RegionGate>().Enabled ? provider.GetRequiredService<RegionEpochWatcher>().CurrentFence : null,
        });
        services.AddSingleton(provider => new IdempotencyStore(
            provider.GetRequiredService<EtcdConnection>(), etcd.IdempotencyPrefix, provider.GetRequiredService<TimeProvider>()));
        services.AddSingleton<RefusalsKept>();
        services.AddSingleton<IdempotentExecutor>();
        // Under the idempotency family: leased, and not shipped to the other region (the API records are, without leases).
        services.AddSingleton(provider => new DepositVolume(
            provider.GetRequiredService<EtcdConnection>(), etcd.IdempotencyPrefix + "~", provider.GetRequiredService<TimeProvider>()));
        // Requests waiting on a duplicate's Idempotency-Key are woken by one watch per replica, not by polling etcd.
        services.AddSingleton<InFlightWaits>();
        services.AddHostedService(provider => provider.GetRequiredService<InFlightWaits>());
        // Clients waiting on a payment's status (GET ?wait=) likewise: one watch on the payment records per replica.
        services.AddSingleton<PaymentStatusWaits>();
        services.AddHostedService(provider => provider.GetRequiredService<PaymentStatusWaits>());
    }

    /// <summary>Webhooks: merchants' endpoints, and the dispatcher that delivers payment events to them (one replica
    /// at a time, under a lock).</summary>
    private static void AddWebhooks(IServiceCollection services, IConfiguration configuration, EtcdOptions etcd)
    {
        var options = (configuration.GetSection(WebhookOptions.Section).Get<WebhookOptions>() ?? new WebhookOptions()).Validate();
        services.AddSingleton(options);
        services.AddSingleton(provider => new WebhookEndpointStore(
            provider.GetRequiredService<EtcdConnection>(), etcd.WebhooksPrefix, provider.GetRequiredService<TimeProvider>())
        {
            RegionFence = provider.GetRequiredService<RegionGate>().Enabled ? provider.GetRequiredService<RegionEpochWatcher>().CurrentFence : null,
        });
        services.AddSingleton(provider => new WebhookDeliveries(
            provider.GetRequiredService<EtcdConnection>(), etcd.WebhooksPrefix, etcd.WebhookOutboxPrefix, provider.GetRequiredService<PaymentRecordStore>().EventsRoot));
        services.AddSingleton<WebhookSender>();
        services.AddSingleton<WebhookDispatcher>();
        services.AddHostedService(provider => provider.GetRequiredService<WebhookDispatcher>());
    }

    /// <summary>A token bucket per API key, each replica holding its share of the key's cluster-wide quota (the quota
    /// divided by <see cref="ApiOptions.Replicas"/>, which the chart sets): no shared counter, so a request costs no
    /// extra round trip, and the cluster-wide limit holds as long as the load balancer spreads a key's requests over
    /// the replicas. Requests without a key are limited per address before authentication (<see cref="ApiKeyMiddleware"/>).</summary>
    private static void ConfigureRateLimits(RateLimiterOptions limiter, ApiOptions options)
    {
        var perReplica = options.RequestsPerSecondPerKeyPerReplica;
        limiter.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(context =>
            context.Items[ApiKeyMiddleware.PrincipalItem] is ApiPrincipal principal
                ? RateLimitPartition.GetTokenBucketLimiter(principal.MerchantId + "/" + principal.KeyId, _ => new TokenBucketRateLimiterOptions
                {
                    TokenLimit = perReplica * 2,
                    TokensPerPeriod = perReplica,
                    ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                    QueueLimit = 0,
                    AutoReplenishment = true,
                })
                : RateLimitPartition.GetNoLimiter(string.Empty));
        limiter.OnRejected = async (rejected, cancellationToken) =>
        {
            rejected.HttpContext.Response.Headers.RetryAfter = "1";
            await Reply.Problem(StatusCodes.Status429TooManyRequests, ProblemTypes.RateLimited, "Too many requests.",
                "Too many requests for this API key; slow down and retry after the time in Retry-After.").ToResult().ExecuteAsync(rejected.HttpContext);
        };
    }

    /// <summary>Faults become problem+json without internals: 503 (retry) for an unavailable dependency, 413 for an
    /// oversized body, 500 otherwise.</summary>
    private static async Task WriteUnhandledAsync(HttpContext context)
    {
        var error = context.Features.Get<IExceptionHandlerFeature>()?.Error;
        // The operator's writes are not replayed by an Idempotency-Key (docs/api.md): telling the operator to retry with
        // one sent them looking for a key the admin API ignores (a probe).
        var admin = context.Request.Path.StartsWithSegments("/admin");
        var retry = admin ? "retry" : "retry (with the same Idempotency-Key for writes)";
        var reply = error switch
        {
            RegionNotWritableException => Reply.Problem(StatusCodes.Status503ServiceUnavailable, ProblemTypes.RegionNotWritable,
                "This region does not accept writes now.", "Retry with the same Idempotency-Key against the active region."),
            // Its own type: on-call's runbook for it is Cosmos DB and the failover service, not etcd or the ledger.
            LedgerReplicationPendingException => Reply.Problem(StatusCodes.Status503ServiceUnavailable, ProblemTypes.ReplicationPending,
                "The write is not yet replicated to the other region.",
                "The write is committed but not yet replicated to the other region; retry with the same Idempotency-Key."),
            LedgerUnavailableException or Grpc.Core.RpcException or HttpRequestException => Reply.Unavailable(
                $"A service the API depends on is temporarily unavailable; {retry}."),
            Payments.Etcd.EtcdContentionException => Reply.Unavailable(
                $"Too many requests changed the same record at once; {(admin ? "the write was not made: retry" : retry)}."),
            // A call to another service timed out (HttpClient's timeout), not the caller leaving.
            OperationCanceledException when !context.RequestAborted.IsCancellationRequested => Reply.Unavailable(
                $"A service the API depends on did not answer in time; {retry}."),
            BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } => Reply.Problem(
                StatusCodes.Status413PayloadTooLarge, ProblemTypes.PayloadTooLarge, "The request body is too large."),
            // A body that did not arrive in time (Kestrel's minimum data rate) is no malformed request: http-408, as
            // docs/api.md says, not malformed-request (documented as 400).
            BadHttpRequestException { StatusCode: StatusCodes.Status408RequestTimeout } => Reply.Problem(
                StatusCodes.Status408RequestTimeout, ProblemTypes.ForStatus(StatusCodes.Status408RequestTimeout), "Request Timeout",
                "The request's body did not arrive in time."),
            BadHttpRequestException bad => Reply.Problem(bad.StatusCode, ProblemTypes.MalformedRequest, "The request is malformed."),
            { } unreadable when Payments.ServiceDefaults.UnreadableBodies.IsCallers(unreadable) => Reply.Problem(
                StatusCodes.Status400BadRequest, ProblemTypes.MalformedRequest, "The request is malformed.", "The body's chunked framing is broken."),
            _ => Reply.Problem(StatusCodes.Status500InternalServerError, ProblemTypes.InternalError, "Something went wrong on our side.",
                $"Quote trace id {context.TraceIdentifier} when you contact support."),
        };
        if (reply.StatusCode == StatusCodes.Status503ServiceUnavailable)
        {
            context.Response.Headers.RetryAfter = "1";
        }

        if (error is not null && IsExpected(error, context) && Unavailable.ShouldLog(out var answered))
        {
            context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("Payments.Api.Problems")
                .LogWarning("Answered 503 ({Kind}): {Reason} ({Answered} such answers since the last such line)", error.GetType().Name, error.Message, answered);
        }

        await reply.ToResult().ExecuteAsync(context);
    }

    /// <summary>The 503s written: one line a minute at most, with how many were answered (a fault probe: during an etcd
    /// outage a line per retry, 2,700 a minute per replica, growing with the clients).</summary>
    private static readonly Payments.ServiceDefaults.Security.RefusalLog Unavailable = new();

    /// <summary>Exceptions that are answers (503 and retry), not faults of ours: logged as one warning line each, not as
    /// "An unhandled exception" with a stack trace — a ledger restart or an etcd election wrote ~30 of those in 4 s,
    /// the line the api-errors runbook calls a defect of ours (a fault probe). An etcd refusal other than away or
    /// slow (a malformed transaction, say) is a defect and keeps its trace; out of space (ResourceExhausted "database
    /// space exceeded": etcd's NOSPACE alarm, which refuses every put and lease grant) is an outage with its own runbook (etcd-nospace.md), not
    /// a defect — logged with a trace per write, it sent on-call to api-errors.md's "a defect of ours" (a docs review).</summary>
    internal static bool IsExpected(Exception error, HttpContext context) =>
        (error is OperationCanceledException && !context.RequestAborted.IsCancellationRequested) // a dependency's timeout
        || error is Payments.Etcd.EtcdContentionException or RegionNotWritableException or LedgerReplicationPendingException
            or LedgerUnavailableException or HttpRequestException
        // Internal too: etcd's client reports a connection that stopped answering its keep-alive pings so (EtcdConnection
        // retries it as transient), 14 traces in a fault probe's frozen etcd.
        || error is Grpc.Core.RpcException
        {
            StatusCode: Grpc.Core.StatusCode.Unavailable or Grpc.Core.StatusCode.DeadlineExceeded or Grpc.Core.StatusCode.Cancelled or Grpc.Core.StatusCode.Internal,
        }
        // NOSPACE, or etcd shedding load: a message over gRPC's size limit is ResourceExhausted too, and that is ours.
        || (error is Grpc.Core.RpcException { StatusCode: Grpc.Core.StatusCode.ResourceExhausted } exhausted
            && (exhausted.Status.Detail.Contains("database space exceeded", StringComparison.Ordinal)
                || exhausted.Status.Detail.Contains("too many requests", StringComparison.Ordinal)));
}

using System.Threading.RateLimiting;
using Dapr.Workflow;
using Microsoft.AspNetCore.Diagnostics;
using Payments.Api.Apis;
using Payments.Api.Idempotency;
using Payments.Api.Problems;
using Payments.Api.Security;
using Payments.Api.Storage;
using Payments.Etcd;
using Payments.Ledger.Client;
using Payments.Ledger.Core;
using Payments.ServiceDefaults;
using Payments.Orchestrator.Gateway;
using Payments.Orchestrator.Records;

namespace Payments.Api.Extensions;

public static class ApiExtensions
{
    /// <summary>Composition of the API: etcd-backed stores, the ledger (in process in the local mode), the Dapr
    /// workflow client, rate limits, OpenAPI.</summary>
    public static void AddPaymentsApi(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = builder.Configuration.GetSection("Payments").Get<ApiOptions>() ?? new ApiOptions();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = RequestBody.MaxBytes * 4L; // RequestBody enforces the exact limit with a problem reply
        });

        var services = builder.Services;
        services.AddSingleton(options);
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton(_ => EtcdConnection.Create(options.EtcdEndpoints));
        // A region of a two-region deployment (Region:Name set) accepts writes only while it is the active region.
        var region = new RegionGate(!string.IsNullOrWhiteSpace(builder.Configuration["Region:Name"]));
        services.AddSingleton(region);
        services.AddSingleton(provider => new RegionEpochWatcher(provider.GetRequiredService<EtcdConnection>(), options.KeyPrefix, provider.GetRequiredService<TimeProvider>()));
        if (region.Enabled)
        {
            services.AddHostedService<RegionEpochWatcherService>();
        }

        if (options.LedgerUrl is { Length: > 0 } ledgerUrl)
        {
            // The ledger service (Dapr service invocation on Kubernetes, its own process locally); calls are bounded.
            services.AddInvocationClient<ILedger, HttpLedger>(ledgerUrl, ApiOptions.LedgerCallTimeout);
        }
        else
        {
            services.AddSingleton<ILedger>(provider => new EtcdLedger(
                provider.GetRequiredService<EtcdConnection>(), options.KeyPrefix + "ledger/", provider.GetRequiredService<TimeProvider>(),
                provider.GetRequiredService<ILoggerFactory>().CreateLogger<EtcdLedger>(),
                region.Enabled ? provider.GetRequiredService<RegionEpochWatcher>().CurrentFence : null));
        }

        services.AddSingleton(provider => new ApiStore(provider.GetRequiredService<EtcdConnection>(), options.KeyPrefix + "api/"));
        services.AddSingleton(provider => new PaymentRecordStore(provider.GetRequiredService<EtcdConnection>(), options.KeyPrefix + "payments/"));
        services.AddSingleton(provider => new IdempotencyStore(
            provider.GetRequiredService<EtcdConnection>(), options.KeyPrefix + "idempotency/", provider.GetRequiredService<TimeProvider>()));
        services.AddSingleton<IdempotentExecutor>();
        services.AddSingleton<PaymentServices>();
        if (options.OrchestratorUrl is { Length: > 0 } orchestratorUrl)
        {
            services.AddInvocationClient<IPaymentWorkflows, HttpPaymentWorkflows>(orchestratorUrl, ApiOptions.OrchestratorCallTimeout);
        }
        else
        {
            AddWorkflowClientOnly(services);
            services.AddSingleton<IPaymentWorkflows, DaprPaymentWorkflows>();
        }

        services.AddOpenApi();
        services.AddProblemDetails();
        services.AddRateLimiter(limiter =>
        {
            limiter.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(context =>
                context.Items[ApiKeyMiddleware.MerchantItem] is string merchant
                    ? RateLimitPartition.GetTokenBucketLimiter(merchant, _ => new TokenBucketRateLimiterOptions
                    {
                        TokenLimit = options.RequestsPerSecondPerKey * 2,
                        TokensPerPeriod = options.RequestsPerSecondPerKey,
                        ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                        QueueLimit = 0,
                        AutoReplenishment = true,
                    })
                    : RateLimitPartition.GetNoLimiter(string.Empty));
            limiter.OnRejected = async (rejected, cancellationToken) =>
            {
                rejected.HttpContext.Response.Headers.RetryAfter = "1";
                await Reply.Problem(StatusCodes.Status429TooManyRequests, ProblemTypes.RateLimited, "Too many requests for this API key.",
                    "Slow down and retry after the time in Retry-After.").ToResult().ExecuteAsync(rejected.HttpContext);
            };
        });
    }

    public static void UsePaymentsApi(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.UseExceptionHandler(handler => handler.Run(WriteUnhandledAsync));
        app.UseStatusCodePages();
        app.UseMiddleware<ApiKeyMiddleware>();
        app.UseMiddleware<RegionWriteGate>();
        app.UseRateLimiter();
        app.MapOpenApi();
        // Readiness: etcd reachable and, in a region, the region active — the global load balancer routes clients to
        // the region that is ready.
        app.MapHealthEndpoints(async (services, cancellationToken) =>
            await services.GetRequiredService<EtcdConnection>().IsReachableAsync(cancellationToken)
            && (!services.GetRequiredService<RegionGate>().Enabled || services.GetRequiredService<RegionEpochWatcher>().IsWritable));
        app.MapAccountsApiV1();
        app.MapPaymentsApiV1();
    }

    /// <summary>Only without an orchestrator URL (tests that share one local sidecar): the API then schedules and
    /// queries the workflows itself but hosts none. Dapr's registration also adds a worker that would take work items
    /// from the shared sidecar, so the worker's hosted service is removed here.</summary>
    private static void AddWorkflowClientOnly(IServiceCollection services)
    {
        services.AddDaprWorkflow(_ => { });
        var workers = services.Where(descriptor => descriptor.ServiceType == typeof(IHostedService)
            && (descriptor.ImplementationType ?? descriptor.ImplementationInstance?.GetType())?.Assembly == typeof(DaprWorkflowClient).Assembly).ToArray();
        foreach (var worker in workers)
        {
            services.Remove(worker);
        }
    }

    /// <summary>Faults become problem+json without internals: 503 (retry) for an unavailable dependency, 413 for an
    /// oversized body, 500 otherwise.</summary>
    private static async Task WriteUnhandledAsync(HttpContext context)
    {
        var error = context.Features.Get<IExceptionHandlerFeature>()?.Error;
        var reply = error switch
        {
            RegionNotWritableException => Reply.Problem(StatusCodes.Status503ServiceUnavailable, ProblemTypes.RegionNotWritable,
                "This region does not accept writes now.", "Retry with the same Idempotency-Key against the active region."),
            LedgerUnavailableException or Grpc.Core.RpcException or HttpRequestException => Reply.Unavailable(
                "A service the API depends on is temporarily unavailable; retry (with the same Idempotency-Key for writes)."),
            BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } => Reply.Problem(
                StatusCodes.Status413PayloadTooLarge, ProblemTypes.PayloadTooLarge, "The request body is too large."),
            BadHttpRequestException bad => Reply.Problem(bad.StatusCode, ProblemTypes.MalformedRequest, "The request is malformed."),
            _ => Reply.Problem(StatusCodes.Status500InternalServerError, ProblemTypes.InternalError, "Something went wrong on our side.",
                $"Quote trace id {context.TraceIdentifier} when you contact support."),
        };
        if (reply.StatusCode == StatusCodes.Status503ServiceUnavailable)
        {
            context.Response.Headers.RetryAfter = "1";
        }

        await reply.ToResult().ExecuteAsync(context);
    }
}

using DurableTask.Core;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.DurableTask.Testing.Sidecar.Grpc;
using Payments.WorkflowSidecar.Engine;
using Payments.WorkflowSidecar.Protocol;

namespace Payments.WorkflowSidecar.Extensions;

internal static class SidecarExtensions
{
    public static void AddWorkflowSidecar(this WebApplicationBuilder builder, SidecarOptions options)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(options);
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(options.Host, options.Port, listen => listen.Protocols = HttpProtocols.Http2));
        var services = builder.Services;
        services.AddGrpc();
        services.AddSingleton(options);
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton<UnthrottledInMemoryOrchestrationService>();
        services.AddSingleton<IOrchestrationService>(provider => provider.GetRequiredService<UnthrottledInMemoryOrchestrationService>());
        services.AddSingleton<IOrchestrationServiceClient>(provider => provider.GetRequiredService<UnthrottledInMemoryOrchestrationService>());
        services.Configure<TaskHubGrpcServerOptions>(server => server.Mode = TaskHubGrpcServerMode.ApiServerAndDispatcher);
        // One server instance for the process: it holds the worker connection and the in-flight work.
        services.AddSingleton<ReconnectingTaskHubServer>();
        services.AddHostedService<FinishedWorkflowPurger>();
    }

    public static void UseWorkflowSidecar(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var options = app.Services.GetRequiredService<SidecarOptions>();
        app.Logger.LogWarning(
            "Development workflow sidecar on {Host}:{Port}: in-memory, for development and tests only — production runs daprd.",
            options.Host, options.Port);
        // daprd's API token, from the same variable daprd reads: without one (a test's own throw-away sidecar) every
        // local process may call, and it says so — on loopback only. Reachable from elsewhere (a container's 0.0.0.0)
        // without a token, anyone on that network could approve or end payments' workflows: it does not start.
        if (app.Configuration["DAPR_API_TOKEN"] is { Length: > 0 } token)
        {
            app.Use(DaprApiTokenCheck.For(token));
        }
        else if (System.Net.IPAddress.IsLoopback(options.Host))
        {
            app.Logger.LogWarning("No DAPR_API_TOKEN: any process that reaches {Host}:{Port} may drive workflows.", options.Host, options.Port);
        }
        else
        {
            throw new InvalidOperationException(
                $"No DAPR_API_TOKEN, and listening on {options.Host}, not loopback: every caller there could drive workflows. Set DAPR_API_TOKEN, or listen on 127.0.0.1.");
        }

        app.Use(DaprWorkflowProtocolAdapter.RewriteAsync);
        app.MapGrpcService<ReconnectingTaskHubServer>();
    }
}

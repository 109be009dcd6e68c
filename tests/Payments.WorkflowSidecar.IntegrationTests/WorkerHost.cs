using Dapr.Workflow;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Payments.WorkflowSidecar.IntegrationTests;

/// <summary>A Dapr workflow worker and client exactly as an app configures them, pointed at the sidecar by endpoint.</summary>
public static class WorkerHost
{
    public static async Task<IHost> StartAsync(string sidecarEndpoint, string? apiToken)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        // What DAPR_GRPC_ENDPOINT says in the local mode; on Kubernetes daprd's own port.
        builder.Configuration["DAPR_GRPC_ENDPOINT"] = sidecarEndpoint;
        if (apiToken is not null)
        {
            builder.Configuration["DAPR_API_TOKEN"] = apiToken; // the SDK presents it on every call, as to daprd
        }
        builder.Services.AddDaprWorkflow(options =>
        {
            options.RegisterWorkflow<ChainWorkflow>();
            options.RegisterWorkflow<StuckOnceWorkflow>();
            options.RegisterActivity<AppendActivity>();
            options.RegisterActivity<StuckActivity>();
        });
        var host = builder.Build();
        await host.StartAsync();
        return host;
    }
}

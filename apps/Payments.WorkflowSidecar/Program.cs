using DurableTask.Core;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.DurableTask.Testing.Sidecar.Grpc;
using Payments.WorkflowSidecar;
using Payments.WorkflowSidecar.Engine;
using Payments.WorkflowSidecar.Protocol;

// Serves Dapr's workflow gRPC protocol (TaskHubSidecarService) from Microsoft's in-memory durable-task engine, so that
// the apps' unchanged Dapr.Workflow code runs where daprd cannot. State lives in memory: development and tests only.
var options = SidecarOptions.Parse(args);
var builder = WebApplication.CreateSlimBuilder(args);
builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(options.Host, options.Port, listen => listen.Protocols = HttpProtocols.Http2));
builder.Services.AddGrpc();
builder.Services.AddSingleton(options);
builder.Services.AddSingleton(TimeProvider.System);
builder.Services.AddSingleton<UnthrottledInMemoryOrchestrationService>();
builder.Services.AddSingleton<IOrchestrationService>(services => services.GetRequiredService<UnthrottledInMemoryOrchestrationService>());
builder.Services.AddSingleton<IOrchestrationServiceClient>(services => services.GetRequiredService<UnthrottledInMemoryOrchestrationService>());
builder.Services.Configure<TaskHubGrpcServerOptions>(server => server.Mode = TaskHubGrpcServerMode.ApiServerAndDispatcher);
// One server instance for the process: it holds the worker connection and the in-flight work.
builder.Services.AddSingleton<ReconnectingTaskHubServer>();
builder.Services.AddHostedService<FinishedWorkflowPurger>();

var app = builder.Build();
app.Logger.LogWarning(
    "Development workflow sidecar on {Host}:{Port}: in-memory, for development and tests only — production runs daprd.",
    options.Host, options.Port);
app.Use(DaprWorkflowProtocolAdapter.RewriteAsync);
app.MapGrpcService<ReconnectingTaskHubServer>();
await app.RunAsync();

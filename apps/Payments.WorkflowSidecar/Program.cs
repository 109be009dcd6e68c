using Payments.WorkflowSidecar;
using Payments.WorkflowSidecar.Extensions;

// Serves Dapr's workflow gRPC protocol (TaskHubSidecarService) from Microsoft's in-memory durable-task engine, so that
// the apps' unchanged Dapr.Workflow code runs where daprd cannot. State lives in memory: development and tests only.
var options = SidecarOptions.Parse(args);
var builder = WebApplication.CreateSlimBuilder(args);
builder.AddWorkflowSidecar(options);

var app = builder.Build();
app.UseWorkflowSidecar();
await app.RunAsync();

/// <summary>Internal: tests start this sidecar as a process (SidecarProcess), never through its Program.</summary>
internal partial class Program;

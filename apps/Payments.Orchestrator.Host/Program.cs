using Payments.Orchestrator.Host.Extensions;
using Payments.ServiceDefaults;

var builder = WebApplication.CreateSlimBuilder(args);
builder.AddServiceDefaults("payments-orchestrator");
builder.AddPaymentsOrchestrator();
// The Dapr SDK's worker logs every failed activity attempt with its trace: during a ledger or risk outage, hundreds a minute.
Payments.ServiceDefaults.Logging.ExpectedFaultLogging.SummarizeExpectedFaults(builder.Logging, "Dapr.Workflow.Worker.WorkflowWorker");

var app = builder.Build();
app.UsePaymentsOrchestrator();
await app.RunAsync();

/// <summary>Internal: test projects compose this host through <c>AddPaymentsOrchestrator</c>, never through its Program.</summary>
internal partial class Program;

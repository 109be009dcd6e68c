using Payments.Orchestrator.Host.Extensions;
using Payments.ServiceDefaults;

var builder = WebApplication.CreateSlimBuilder(args);
builder.AddServiceDefaults("payments-orchestrator");
builder.AddPaymentsOrchestrator();

var app = builder.Build();
app.UsePaymentsOrchestrator();
await app.RunAsync();

/// <summary>Internal: test projects compose this host through <c>AddPaymentsOrchestrator</c>, never through its Program.</summary>
internal partial class Program;

using Dapr.Workflow;
using Payments.Etcd;
using Payments.Ledger.Client;
using Payments.Ledger.Core;
using Payments.Ledger.Core.Expiry;
using Payments.Orchestrator;
using Payments.Orchestrator.Gateway;
using Payments.Orchestrator.Records;
using Payments.Orchestrator.Host;
using Payments.Risk.Core;
using Payments.ServiceDefaults;

// Hosts the payment saga. In the local mode the ledger and the risk rules run in this process behind the same
// interfaces (ILedger, IRiskAssessor) that Dapr service invocation serves on Kubernetes.
var builder = WebApplication.CreateSlimBuilder(args);
builder.AddServiceDefaults("payments-orchestrator");
var options = builder.Configuration.GetSection("Payments").Get<OrchestratorOptions>() ?? new OrchestratorOptions();
builder.Services.AddSingleton(options);
builder.Services.AddSingleton(TimeProvider.System);
builder.Services.AddSingleton(_ => EtcdConnection.Create(options.EtcdEndpoints));
builder.Services.AddSingleton(provider => new EtcdLedger(
    provider.GetRequiredService<EtcdConnection>(), options.KeyPrefix + "ledger/", provider.GetRequiredService<TimeProvider>(),
    provider.GetRequiredService<ILoggerFactory>().CreateLogger<EtcdLedger>()));
if (options.LedgerUrl is { Length: > 0 } ledgerUrl)
{
    // The ledger service: Dapr service invocation on Kubernetes (http://localhost:3500/v1.0/invoke/ledger/method/),
    // its own process locally. Each call is bounded; a timeout is a fault the workflow runtime retries.
    builder.Services.AddInvocationClient<ILedger, HttpLedger>(ledgerUrl, OrchestratorOptions.LedgerCallTimeout);
}
else
{
    builder.Services.AddSingleton<ILedger>(provider => provider.GetRequiredService<EtcdLedger>());
    builder.Services.AddHostedService<HoldExpiryService>(); // no ledger service: its sweep runs here
}

if (options.RiskUrl is { Length: > 0 } riskUrl)
{
    builder.Services.AddInvocationClient<IRiskAssessor, HttpRiskAssessor>(riskUrl, OrchestratorOptions.RiskCallTimeout);
}
else
{
    builder.Services.AddSingleton<IRiskAssessor>(provider => new RiskEngine(
        RiskPolicy.Default with { ReviewThresholdMinor = options.ReviewThresholdMinor }, provider.GetRequiredService<TimeProvider>()));
}
builder.Services.AddDaprWorkflow(workflows => workflows.RegisterPaymentSaga());
builder.Services.AddSingleton<IPaymentWorkflows, DaprPaymentWorkflows>();
builder.Services.AddSingleton(provider => new PaymentRecordStore(provider.GetRequiredService<EtcdConnection>(), options.KeyPrefix + "payments/"));

var app = builder.Build();
app.MapPaymentWorkflowsApi();
app.MapHealthEndpoints((services, cancellationToken) => services.GetRequiredService<EtcdConnection>().IsReachableAsync(cancellationToken));
await app.RunAsync();

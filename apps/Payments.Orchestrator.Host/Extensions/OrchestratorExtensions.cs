using Dapr.Workflow;
using Payments.Etcd;
using Payments.Etcd.Regions;
using Payments.Ledger.Client;
using Payments.Ledger.Contracts;
using Payments.Orchestrator.Client.Gateway;
using Payments.Orchestrator.Client.Records;
using Payments.Orchestrator.Host.Apis;
using Payments.Orchestrator.Host.Sweeping;
using Payments.Orchestrator.Sweeping;
using Payments.Orchestrator.Workflows;
using Payments.Risk.Client;
using Payments.Risk.Contracts;
using Payments.ServiceDefaults;
using Payments.ServiceDefaults.Security;

namespace Payments.Orchestrator.Host.Extensions;

public static class OrchestratorExtensions
{
    /// <summary>The orchestrator: PaymentWorkflow and its activities on the Dapr workflow runtime (the sidecar at
    /// <c>DAPR_GRPC_ENDPOINT</c>), the ledger and risk services through bounded invocation clients, the payment
    /// records, and the gateway its internal endpoints serve.</summary>
    public static void AddPaymentsOrchestrator(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = (builder.Configuration.GetSection(EtcdOptions.Section).Get<OrchestratorOptions>() ?? new OrchestratorOptions()).Validate();
        var etcd = builder.Configuration.GetSection(EtcdOptions.Section).Get<EtcdOptions>() ?? new EtcdOptions();
        builder.Services.AddSingleton(options);
        if (options.StateStoreCertificateFile is { Length: > 0 } stateStoreCertificate)
        {
            // Unreadable: the start fails, as for the app's own. The memo in the pod's /tmp (an emptyDir) outlives a
            // restart of this container alone, not of the pod (when the sidecar reads the certificate again too).
            EtcdTls.ReportSidecarCertificate(stateStoreCertificate, Path.Combine(Path.GetTempPath(), "daprpayments-statestore-certificate-expiry"));
        }

        var identity = builder.AddServiceIdentity();
        builder.Services.AddEtcd(etcd, builder.Configuration.IsRegional());
        // Each call is bounded; a timeout is a fault the workflow runtime retries (transfer ids make retries safe).
        builder.Services.AddInvocationClient<ILedger, HttpLedger>(options.LedgerUrl!, OrchestratorOptions.LedgerCallTimeout, identity, ServiceRoles.Ledger);
        builder.Services.AddInvocationClient<IRiskAssessor, HttpRiskAssessor>(options.RiskUrl!, OrchestratorOptions.RiskCallTimeout, identity, ServiceRoles.Risk);
        builder.Services.AddDaprWorkflow(workflows => workflows.RegisterPaymentSaga());
        builder.Services.AddSingleton<DaprPaymentWorkflows>();
        builder.Services.AddSingleton<IPaymentWorkflows>(provider => provider.GetRequiredService<DaprPaymentWorkflows>());
        // A status change that raises a payment event leaves its marker in the webhook outbox, in the same transaction.
        // In a region of two, every change carries the region's epoch fence: a demoted region's sagas decide nothing.
        var regional = builder.Configuration.IsRegional();
        builder.Services.AddSingleton(provider => new PaymentRecordStore(provider.GetRequiredService<EtcdConnection>(), etcd.PaymentsPrefix)
        {
            OutboxPrefix = etcd.WebhookOutboxPrefix,
            RegionFence = regional ? provider.GetRequiredService<RegionEpochWatcher>().CurrentFence : null,
        });
        AddSweeper(builder.Services, options, etcd);
    }

    /// <summary>Nothing stays stuck: the sweeper resumes payments whose saga is missing, ended without an outcome or
    /// stopped progressing (and, after a takeover, every unfinished one).</summary>
    private static void AddSweeper(IServiceCollection services, OrchestratorOptions options, EtcdOptions etcd)
    {
        var policy = SweepPolicy.For(options.ApprovalTimeout);
        services.AddSingleton(policy);
        services.AddSingleton(provider => new StuckPaymentSweeper(
            provider.GetRequiredService<PaymentRecordStore>(), provider.GetRequiredService<DaprPaymentWorkflows>(),
            provider.GetRequiredService<EtcdConnection>(), etcd, policy, options.ApprovalTimeout, provider.GetRequiredService<TimeProvider>(),
            provider.GetRequiredService<ILogger<StuckPaymentSweeper>>()));
        services.AddHostedService<StuckPaymentSweeperService>();
    }

    public static void UsePaymentsOrchestrator(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.UseServiceIdentity();
        app.MapPaymentWorkflowsApi();
        app.MapHealthEndpoints((services, cancellationToken) => services.IsEtcdReachableAsync(cancellationToken));
        app.MapMetricsEndpoint();
    }
}

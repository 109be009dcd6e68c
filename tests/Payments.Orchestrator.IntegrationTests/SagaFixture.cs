using Dapr.Workflow;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Payments.Ledger.Core;
using Payments.Risk.Core;
using Payments.Testing;

namespace Payments.Orchestrator.IntegrationTests;

/// <summary>The saga on real parts: a 3-member etcd cluster with the ledger, the workflow sidecar in its own process,
/// and the Dapr workflow worker and client as the orchestrator configures them.</summary>
public sealed class SagaFixture : IAsyncLifetime
{
    /// <summary>Payments above this (minor units) go to review.</summary>
    public const long ReviewThresholdMinor = 100_000;

    private readonly EtcdClusterFixture etcd = new();
    private readonly SidecarProcess sidecar = new();
    private IHost? worker;

    public EtcdLedger Ledger { get; private set; } = null!;

    public FlakyLedger Flaky { get; private set; } = null!;

    public DaprWorkflowClient Workflows { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        try
        {
            await etcd.InitializeAsync();
            await sidecar.InitializeAsync();
            Ledger = etcd.NewLedger();
            Flaky = new FlakyLedger(Ledger);
            var builder = Host.CreateApplicationBuilder();
            builder.Logging.SetMinimumLevel(LogLevel.Warning);
            builder.Configuration["DAPR_GRPC_ENDPOINT"] = sidecar.Endpoint;
            builder.Services.AddSingleton<ILedger>(Flaky);
            builder.Services.AddSingleton<IRiskAssessor>(new RiskEngine(
                RiskPolicy.Default with { ReviewThresholdMinor = ReviewThresholdMinor, VelocityMaxCount = 10_000, VelocityMaxSumMinor = long.MaxValue / 2 },
                TimeProvider.System));
            builder.Services.AddDaprWorkflow(options => options.RegisterPaymentSaga());
            worker = builder.Build();
            await worker.StartAsync();
            Workflows = worker.Services.GetRequiredService<DaprWorkflowClient>();
        }
        catch
        {
            // xunit does not call DisposeAsync when InitializeAsync throws: clean up what started.
            await DisposeAsync();
            throw;
        }
    }

    public async Task DisposeAsync()
    {
        if (worker is not null)
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await worker.StopAsync(stop.Token);
            worker.Dispose();
        }

        await sidecar.DisposeAsync();
        await etcd.DisposeAsync();
    }
}

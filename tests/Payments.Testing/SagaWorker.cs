using Dapr.Workflow;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Payments.Ledger.Core;
using Payments.Orchestrator;
using Payments.Orchestrator.Records;
using Payments.Risk.Core;

namespace Payments.Testing;

/// <summary>The orchestrator's workflow worker in the test process, configured as the orchestrator app configures it,
/// with the ledger given (the real one, possibly behind a fault injector) and the risk rules in process.</summary>
public static class SagaWorker
{
    public static async Task<IHost> StartAsync(string sidecarEndpoint, ILedger ledger, PaymentRecordStore records, long reviewThresholdMinor)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Configuration["DAPR_GRPC_ENDPOINT"] = sidecarEndpoint;
        builder.Services.AddSingleton(ledger);
        builder.Services.AddSingleton(records);
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<IRiskAssessor>(new RiskEngine(
            RiskPolicy.Default with { ReviewThresholdMinor = reviewThresholdMinor, VelocityMaxCount = 100_000, VelocityMaxSumMinor = long.MaxValue / 2 },
            TimeProvider.System));
        builder.Services.AddDaprWorkflow(options => options.RegisterPaymentSaga());
        var host = builder.Build();
        await host.StartAsync();
        return host;
    }

    /// <summary>Stops the worker within a bound (its stream to the sidecar closes) and disposes it.</summary>
    public static async Task StopAsync(IHost? worker)
    {
        if (worker is null)
        {
            return;
        }

        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await worker.StopAsync(stop.Token);
        worker.Dispose();
    }
}

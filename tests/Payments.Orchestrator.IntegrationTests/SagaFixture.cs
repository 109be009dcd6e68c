using Dapr.Workflow;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Payments.Etcd;
using Payments.Ledger.Core;
using Payments.Orchestrator.Client.Records;
using Payments.Testing;

namespace Payments.Orchestrator.IntegrationTests;

/// <summary>One <see cref="SagaFixture"/> for every class of this assembly, which run one after another: three ran
/// side by side (three etcd clusters, sidecars and workers on CI's 2 cores), eating into every other suite's bounds.
/// The tests keep apart by payment and account ids.</summary>
[CollectionDefinition(Name)]
public sealed class SagaCollection : ICollectionFixture<SagaFixture>
{
    public const string Name = "saga";
}

/// <summary>The saga on real parts: a 3-member etcd cluster with the ledger, the workflow sidecar in its own process,
/// and the Dapr workflow worker and client as the orchestrator configures them.</summary>
public sealed class SagaFixture : IAsyncLifetime
{
    /// <summary>Payments above this (minor units) go to review.</summary>
    public const long ReviewThresholdMinor = 100_000;

    /// <summary>How long a payment may wait for its reviewer here: the worker's, and the tests' own sweepers'.</summary>
    public static readonly TimeSpan ApprovalTimeout = TimeSpan.FromMinutes(5);

    private readonly EtcdClusterFixture etcd = new();
    private readonly SidecarProcess sidecar = new();
    private WebApplication? worker;

    public EtcdLedger Ledger { get; private set; } = null!;

    public FlakyLedger Flaky { get; private set; } = null!;

    public PaymentRecordStore Records { get; private set; } = null!;

    /// <summary>The etcd key prefix of the saga's data (records under <c>payments/</c>).</summary>
    public string Prefix { get; private set; } = null!;

    /// <summary>Root access to the fixture's etcd, for reading what the saga wrote.</summary>
    public EtcdConnection Etcd => etcd.Connection;

    public DaprWorkflowClient Workflows { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        try
        {
            await etcd.InitializeAsync();
            await sidecar.InitializeAsync();
            Ledger = etcd.NewLedger();
            Flaky = new FlakyLedger(Ledger);
            var prefix = Prefix = EtcdClusterFixture.NewPrefix();
            Records = new PaymentRecordStore(etcd.Connection, prefix + "payments/");
            // The worker's own sweeper runs beside the tests' (same records, same lock): with the tests' approval
            // deadline, a payment it resumes first is given what the tests' sweeper would give it (a 24 h deadline made
            // a resumed old review wait for a day, and the test waiting for its end failed).
            worker = await SagaWorker.StartAsync(sidecar, etcd.Cluster, prefix, Flaky, ReviewThresholdMinor,
                new Dictionary<string, string> { ["Payments:ApprovalTimeout"] = ApprovalTimeout.ToString("c", System.Globalization.CultureInfo.InvariantCulture) });
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
        await SagaWorker.StopAsync(worker);
        await sidecar.DisposeAsync();
        await etcd.DisposeAsync();
    }
}

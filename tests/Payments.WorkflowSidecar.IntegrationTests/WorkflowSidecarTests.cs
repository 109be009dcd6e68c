using Payments.Testing;
using System.Diagnostics;
using Dapr.Workflow;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Payments.WorkflowSidecar.IntegrationTests;

public sealed class WorkflowSidecarTests(SidecarProcess sidecar) : IClassFixture<SidecarProcess>
{
    public static readonly TimeSpan WorkflowTimeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task ShouldRunChainedActivitiesTimersAndExternalEvents_ThroughTheRealDaprClient()
    {
        using var host = await WorkerHost.StartAsync(sidecar.Endpoint, sidecar.ApiToken);
        var client = host.Services.GetRequiredService<DaprWorkflowClient>();
        using var timeout = new CancellationTokenSource(WorkflowTimeout);
        var approved = $"wf-{Guid.NewGuid():N}";
        var rejected = $"wf-{Guid.NewGuid():N}";
        var unanswered = $"wf-{Guid.NewGuid():N}";

        await client.ScheduleBoundedAsync(nameof(ChainWorkflow), approved, "pay");
        await client.ScheduleBoundedAsync(nameof(ChainWorkflow), rejected, "pay");
        await client.ScheduleBoundedAsync(nameof(ChainWorkflow), unanswered, "pay" + ChainWorkflow.Brief);

        await client.RaiseEventAsync(approved, ChainWorkflow.ApprovalEvent, true, timeout.Token);
        await client.RaiseEventAsync(rejected, ChainWorkflow.ApprovalEvent, false, timeout.Token);

        Assert.Equal("pay-1!-2!-approved", await OutputAsync(client, approved, timeout.Token));
        Assert.Equal("pay-1!-2!-rejected", await OutputAsync(client, rejected, timeout.Token));
        Assert.Equal("pay-1!-deadline", await OutputAsync(client, unanswered, timeout.Token));
        await host.StopAsync(timeout.Token);
    }

    /// <summary>The finding (a live probe): an event for an instance that does not exist was taken, and the engine's
    /// dispatcher retried the orphan message without end at full CPU, logging a stack trace a time. It is refused
    /// (NotFound), as daprd refuses it, and the sidecar goes on serving.</summary>
    [Fact]
    public async Task AnEventForAnInstanceThatDoesNotExist_IsRefused_AndTheSidecarGoesOnServing()
    {
        using var host = await WorkerHost.StartAsync(sidecar.Endpoint, sidecar.ApiToken);
        var client = host.Services.GetRequiredService<DaprWorkflowClient>();
        using var timeout = new CancellationTokenSource(WorkflowTimeout);

        var refused = await Assert.ThrowsAnyAsync<Grpc.Core.RpcException>(() =>
            client.RaiseEventAsync($"nobody-{Guid.NewGuid():N}", ChainWorkflow.ApprovalEvent, true, timeout.Token));
        Assert.Equal(Grpc.Core.StatusCode.NotFound, refused.StatusCode);

        var id = $"wf-{Guid.NewGuid():N}";
        await client.ScheduleBoundedAsync(nameof(ChainWorkflow), id, "pay");
        await client.RaiseEventAsync(id, ChainWorkflow.ApprovalEvent, true, timeout.Token);
        Assert.Equal("pay-1!-2!-approved", await OutputAsync(client, id, timeout.Token));
        await host.StopAsync(timeout.Token);
    }

    /// <summary>Found in review: without a token the sidecar only warned, on any address; on 0.0.0.0 (a container)
    /// anyone on its network could approve or end payments' workflows. It now refuses to start there, and says why.</summary>
    [Fact]
    public async Task WithoutAToken_OnAnAddressBeyondLoopback_TheSidecarDoesNotStart()
    {
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Payments.WorkflowSidecar.dll"));
        foreach (var argument in new[] { "--port", Payments.LocalCluster.LocalPorts.Free().ToString(System.Globalization.CultureInfo.InvariantCulture), "--host", "0.0.0.0" })
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment.Remove("DAPR_API_TOKEN");
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(SidecarProcess.StartTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"The sidecar started on 0.0.0.0 without a token (still running after {SidecarProcess.StartTimeout}).");
        }

        Assert.NotEqual(0, process.ExitCode);
        Assert.Contains("No DAPR_API_TOKEN, and listening on 0.0.0.0", await output + await errors);
    }

    /// <summary>As daprd with <c>DAPR_API_TOKEN</c>: a client without the token, or with another, is refused
    /// (UNAUTHENTICATED) and starts nothing; the SDK with the right one goes through.</summary>
    [Theory]
    [InlineData(null)]
    [InlineData("not-the-token")]
    public async Task ACallWithoutTheSidecarsApiToken_IsRefused_AndStartsNothing(string? presented)
    {
        using var stranger = await WorkerHost.StartAsync(sidecar.Endpoint, presented);
        var intruder = $"intruder-{Guid.NewGuid():N}";
        var refused = await Assert.ThrowsAnyAsync<Grpc.Core.RpcException>(() =>
            stranger.Services.GetRequiredService<DaprWorkflowClient>().ScheduleBoundedAsync(nameof(ChainWorkflow), intruder, "x"));
        Assert.Equal(Grpc.Core.StatusCode.Unauthenticated, refused.StatusCode);
        await stranger.StopAsync(); // its worker would go on knocking, refused, beside the next tests on this sidecar

        using var owner = await WorkerHost.StartAsync(sidecar.Endpoint, sidecar.ApiToken);
        var client = owner.Services.GetRequiredService<DaprWorkflowClient>();
        using var timeout = new CancellationTokenSource(WorkflowTimeout);
        var id = $"owner-{Guid.NewGuid():N}";
        await client.ScheduleBoundedAsync(nameof(ChainWorkflow), id, "pay");
        await client.RaiseEventAsync(id, ChainWorkflow.ApprovalEvent, true, timeout.Token);
        try
        {
            Assert.Equal("pay-1!-2!-approved", await OutputAsync(client, id, timeout.Token)); // the token's owner runs its workflow
        }
        catch (OperationCanceledException)
        {
            // Once seen on a loaded CI machine and not reproduced since: the sidecar's log says whether the owner's
            // worker was connected (or refused as "another client is already connected") and what it was sent.
            Assert.Fail("The owner's workflow did not complete. Sidecar log:\n" + sidecar.RecentLog);
        }

        Assert.NotEqual(true, (await client.GetWorkflowStateAsync(intruder, getInputsAndOutputs: false, timeout.Token))?.Exists);
        await owner.StopAsync(timeout.Token);
    }

    [Fact]
    public async Task InFlightWorkflows_Complete_AfterTheirWorkerDiesMidActivityAndANewOneConnects()
    {
        const int workflows = 10;
        StuckActivity.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Interlocked.Exchange(ref StuckActivity.Started, 0);
        var first = await WorkerHost.StartAsync(sidecar.Endpoint, sidecar.ApiToken);
        var client = first.Services.GetRequiredService<DaprWorkflowClient>();
        var ids = Enumerable.Range(0, workflows).Select(_ => $"stuck-{Guid.NewGuid():N}").ToArray();
        foreach (var id in ids)
        {
            await client.ScheduleBoundedAsync(nameof(StuckOnceWorkflow), id, id);
        }

        // Failed once in a clean-clone CI run (60 s, the machine loaded by the other suites) and not reproduced: the
        // sidecar's log then says whether the worker was connected and what it was sent.
        await PollAsync(() => Volatile.Read(ref StuckActivity.Started) >= workflows,
            () => $"every activity started on the first worker ({Volatile.Read(ref StuckActivity.Started)} of {workflows}). Sidecar log:\n{sidecar.RecentLog}");

        // The first worker dies with every activity in flight: its stream to the sidecar is cut, its work never returns.
        // Disposed, not only stopped, before the gate opens: a host still alive could hand its results back itself, and
        // the new worker would have nothing to run again.
        using (var stopQuickly = new CancellationTokenSource(TimeSpan.FromMilliseconds(200)))
        {
            await first.StopAsync(stopQuickly.Token);
        }

        first.Dispose();
        var startedOnFirst = Volatile.Read(ref StuckActivity.Started);
        StuckActivity.Gate.TrySetResult(); // the new worker's activities run through (the old ones' results are lost)
        using var second = await WorkerHost.StartAsync(sidecar.Endpoint, sidecar.ApiToken);
        var secondClient = second.Services.GetRequiredService<DaprWorkflowClient>();
        using var timeout = new CancellationTokenSource(WorkflowTimeout);
        try
        {
            foreach (var id in ids)
            {
                Assert.Equal(id + "-done", await OutputAsync(secondClient, id, timeout.Token));
            }
        }
        catch (OperationCanceledException)
        {
            Assert.Fail("Workflows did not complete after the worker restarted. Sidecar log:\n" + sidecar.RecentLog);
        }

        // Only the new worker could finish them: every workflow's activity was started again there.
        Assert.True(Volatile.Read(ref StuckActivity.Started) >= startedOnFirst + workflows,
            $"{Volatile.Read(ref StuckActivity.Started) - startedOnFirst} activities started again for {workflows} workflows");
        await second.StopAsync(timeout.Token);
    }

    private static async Task<string?> OutputAsync(DaprWorkflowClient client, string id, CancellationToken cancellationToken)
    {
        var state = await client.WaitForWorkflowCompletionAsync(id, getInputsAndOutputs: true, cancellationToken);
        Assert.Equal(WorkflowRuntimeStatus.Completed, state.RuntimeStatus);
        return state.ReadOutputAs<string>();
    }

    private static async Task PollAsync(Func<bool> condition, Func<string> what)
    {
        var waited = Stopwatch.StartNew();
        while (!condition())
        {
            if (waited.Elapsed >= WorkflowTimeout)
            {
                Assert.Fail($"Timed out waiting until {what()}");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(50));
        }
    }
}

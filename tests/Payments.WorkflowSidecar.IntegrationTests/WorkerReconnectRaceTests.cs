using Grpc.Core;
using Microsoft.DurableTask.Protobuf;
using Microsoft.DurableTask.Testing.Sidecar.Grpc;
using Microsoft.Extensions.Hosting.Internal;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Payments.WorkflowSidecar.Engine;

namespace Payments.WorkflowSidecar.IntegrationTests;

/// <summary>The sidecar's own server, engine and dispatcher, with gRPC's transport stood in for (a worker's stream
/// and its call): the order this test needs — a write on a worker's stream failing after that worker left and a new
/// one connected — cannot be forced over a real HTTP/2 connection (seen once in CI, from a real one).</summary>
public sealed class WorkerReconnectRaceTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task AWriteThatFailsOnTheStreamOfAWorkerThatLeft_IsDispatchedAgain_ToTheWorkerConnectedSince()
    {
        var lifetime = new ApplicationLifetime(NullLogger<ApplicationLifetime>.Instance);
        var engine = new UnthrottledInMemoryOrchestrationService(NullLoggerFactory.Instance);
        using var server = new ReconnectingTaskHubServer(lifetime, NullLoggerFactory.Instance, engine, engine,
            Options.Create(new TaskHubGrpcServerOptions { Mode = TaskHubGrpcServerMode.ApiServerAndDispatcher }));
        lifetime.NotifyStarted(); // the dispatcher starts once a worker connects
        try
        {
            var left = new WorkerStream(holdFirstWrite: true);
            using var leftCall = new WorkerCall();
            var leftWorker = server.GetWorkItems(new GetWorkItemsRequest(), left, leftCall);
            var id = $"race-{Guid.NewGuid():N}";
            await server.StartInstance(new CreateInstanceRequest { InstanceId = id, Name = "AnyWorkflow" }, leftCall);
            await left.FirstWriteStarted.WaitAsync(Bound); // the dispatcher is writing the work item to this worker

            await leftCall.CancelAsync(); // the worker leaves
            await leftWorker.WaitAsync(Bound);
            var next = new WorkerStream(holdFirstWrite: false);
            using var nextCall = new WorkerCall();
            var nextWorker = server.GetWorkItems(new GetWorkItemsRequest(), next, nextCall); // a new one connects
            left.FailFirstWrite(); // and only then does the write on the first one's stream fail, as gRPC fails it

            var sent = await Task.WhenAny(next.FirstOrchestratorRequest, Task.Delay(Bound)) == next.FirstOrchestratorRequest
                ? await next.FirstOrchestratorRequest
                : throw new Xunit.Sdk.XunitException(
                    $"The worker connected since was sent nothing within {Bound.TotalSeconds} s: the write that failed on the stream of the worker that left made the server forget the new one.");
            Assert.Equal(id, sent.InstanceId);
            await nextCall.CancelAsync();
            await nextWorker.WaitAsync(Bound);
        }
        finally
        {
            lifetime.StopApplication();
        }
    }

    /// <summary>A worker's end of GetWorkItems: records what it is sent; the first write can be held, then failed
    /// with the error ASP.NET Core's gRPC server raises on a call that has ended.</summary>
    private sealed class WorkerStream(bool holdFirstWrite) : IServerStreamWriter<WorkItem>
    {
        private readonly TaskCompletionSource firstWriteStarted = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource releaseFirstWrite = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource<OrchestratorRequest> firstOrchestratorRequest = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int writes;

        public Task FirstWriteStarted => firstWriteStarted.Task;

        public Task<OrchestratorRequest> FirstOrchestratorRequest => firstOrchestratorRequest.Task;

        public WriteOptions? WriteOptions { get; set; }

        public void FailFirstWrite() => releaseFirstWrite.TrySetResult();

        public async Task WriteAsync(WorkItem message)
        {
            if (holdFirstWrite && Interlocked.Increment(ref writes) == 1)
            {
                firstWriteStarted.TrySetResult();
                await releaseFirstWrite.Task;
                throw new InvalidOperationException("Can't write the message because the request is complete.");
            }

            if (message.OrchestratorRequest is { } request)
            {
                firstOrchestratorRequest.TrySetResult(request);
            }
        }
    }

    /// <summary>The server side of one call: what the base server reads (its peer, its cancellation).</summary>
    private sealed class WorkerCall : ServerCallContext, IDisposable
    {
        private readonly CancellationTokenSource cancellation = new();

        public Task CancelAsync() => cancellation.CancelAsync();

        public void Dispose() => cancellation.Dispose();

        protected override string MethodCore => "/TaskHubSidecarService/GetWorkItems";

        protected override string HostCore => "localhost";

        protected override string PeerCore => "ipv4:127.0.0.1:1";

        protected override DateTime DeadlineCore => DateTime.MaxValue;

        protected override Metadata RequestHeadersCore { get; } = [];

        protected override CancellationToken CancellationTokenCore => cancellation.Token;

        protected override Metadata ResponseTrailersCore { get; } = [];

        protected override Status StatusCore { get; set; }

        protected override WriteOptions? WriteOptionsCore { get; set; }

        protected override AuthContext AuthContextCore { get; } = new(null, []);

        protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) =>
            throw new NotSupportedException();

        protected override Task WriteResponseHeadersAsyncCore(Metadata responseHeaders) => Task.CompletedTask;
    }
}

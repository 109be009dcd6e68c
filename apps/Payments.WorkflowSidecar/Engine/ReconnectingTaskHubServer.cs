using System.Collections.Concurrent;
using System.Reflection;
using DurableTask.Core;
using Grpc.Core;
using Microsoft.DurableTask.Protobuf;
using Microsoft.DurableTask.Testing.Sidecar.Grpc;
using Microsoft.Extensions.Options;

namespace Payments.WorkflowSidecar.Engine;

/// <summary>Microsoft's gRPC task-hub server, fixed so that work survives a worker that dies, and so that an event for
/// no instance is refused as daprd refuses it.</summary>
/// <remarks>
/// The base server waits without a timeout on every work item it streamed to the worker. When the worker's
/// GetWorkItems stream ends (the orchestrator process crashed), nothing fails those waits: the engine keeps the items
/// locked and a new worker never gets them (measured: 0 of 50 workflows completed). When the stream ends, this
/// subclass fails every wait still pending, so the dispatcher abandons the items and hands them to the next worker
/// (measured: 50 of 50 completed). Activities then run at least once — the interrupted ones twice — which the
/// payment activities are built for (every ledger effect carries an id derived from the payment id).
/// The waits live in private fields of Microsoft.DurableTask.InProcessTestHost 0.2.3-preview.1; the constructor checks
/// they are there, so a package update that moves them fails at start-up, not silently at the first crash.
/// </remarks>
internal sealed class ReconnectingTaskHubServer : TaskHubGrpcServer
{
    private static readonly FieldInfo PendingOrchestrators = RequireField("pendingOrchestratorTasks");
    private static readonly FieldInfo PendingActivities = RequireField("pendingActivityTasks");
    private readonly ILogger logger;

    private readonly IOrchestrationServiceClient client;

    public ReconnectingTaskHubServer(
        IHostApplicationLifetime lifetime, ILoggerFactory loggerFactory, IOrchestrationService service,
        IOrchestrationServiceClient client, IOptions<TaskHubGrpcServerOptions> options)
        : base(lifetime, loggerFactory, service, client, options)
    {
        logger = loggerFactory.CreateLogger<ReconnectingTaskHubServer>();
        this.client = client;
    }

    /// <summary>An event for an instance that does not exist is refused (NotFound), as daprd refuses it: the in-memory
    /// engine took it, and its dispatcher then failed the orphan message's work item and retried it without end, at
    /// full CPU, writing a stack trace a time (a live probe: 1.8 GB of log in 3.5 minutes).</summary>
    public override async Task<RaiseEventResponse> RaiseEvent(RaiseEventRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        var states = await client.GetOrchestrationStateAsync(request.InstanceId, allExecutions: false);
        if (states is not { Count: > 0 } || states[0] is null)
        {
            throw new RpcException(new Status(StatusCode.NotFound, $"no such instance exists: '{request.InstanceId}'"));
        }

        return await base.RaiseEvent(request, context);
    }

    public override async Task GetWorkItems(GetWorkItemsRequest request, IServerStreamWriter<WorkItem> responseStream, ServerCallContext context)
    {
        logger.LogInformation("Workflow worker connected from {Peer}", context.Peer);
        var stream = new WorkerStream(responseStream);
        try
        {
            await base.GetWorkItems(request, stream, context);
        }
        finally
        {
            stream.Close();
            var failed = FailPending(PendingOrchestrators) + FailPending(PendingActivities);
            logger.LogWarning("Workflow worker {Peer} disconnected; {Count} in-flight work items handed back to the engine", context.Peer, failed);
        }
    }

    private int FailPending(FieldInfo field)
    {
        var pending = (System.Collections.IDictionary)field.GetValue(this)!;
        var count = 0;
        foreach (var key in pending.Keys.Cast<object>().ToArray())
        {
            // Take the entry out first: a retry of the same work item registers a fresh wait under the same key, and
            // must not find this failed one.
            var source = pending[key];
            pending.Remove(key);
            if (source is null)
            {
                continue;
            }

            // TaskCompletionSource<T> for two different T, so through reflection.
            var trySetException = source.GetType().GetMethod(nameof(TaskCompletionSource.TrySetException), [typeof(Exception)])!;
            if ((bool)trySetException.Invoke(source, [new RpcException(new Status(StatusCode.Unavailable, "The workflow worker disconnected."))])!)
            {
                count++;
            }
        }

        return count;
    }

    /// <summary>A worker's stream whose failures never read as "the request is complete". On that error the base
    /// server forgets whichever worker is connected now and stops dispatching, even when the stream that failed is an
    /// earlier worker's and a new one has connected since (a dispatcher took the old stream, the worker left, the new
    /// one connected, the write failed): then every workflow waited until the worker reconnected ("No client is
    /// connected" on each retry; fixed upstream after 0.2.3-preview.1, microsoft/durabletask-dotnet#709). Failing as
    /// Unavailable instead, the write's work item is abandoned and dispatched again, to the worker connected then; a
    /// worker that leaves already stops the dispatch (the base's GetWorkItems resets its signal when the call ends).</summary>
    private sealed class WorkerStream(IServerStreamWriter<WorkItem> inner) : IServerStreamWriter<WorkItem>
    {
        private volatile bool closed;

        public WriteOptions? WriteOptions
        {
            get => inner.WriteOptions;
            set => inner.WriteOptions = value;
        }

        public void Close() => closed = true;

        public Task WriteAsync(WorkItem message) => WriteAsync(message, CancellationToken.None);

        public async Task WriteAsync(WorkItem message, CancellationToken cancellationToken)
        {
            if (closed)
            {
                throw Disconnected(null);
            }

            try
            {
                await inner.WriteAsync(message, cancellationToken);
            }
            catch (InvalidOperationException exception)
            {
                throw Disconnected(exception);
            }
        }

        private static RpcException Disconnected(Exception? cause) =>
            new(new Status(StatusCode.Unavailable, "The workflow worker disconnected.", cause));
    }

    private static FieldInfo RequireField(string name) =>
        typeof(TaskHubGrpcServer).GetField(name, BindingFlags.NonPublic | BindingFlags.Instance) is { } field
        && field.FieldType.IsGenericType && field.FieldType.GetGenericTypeDefinition() == typeof(ConcurrentDictionary<,>)
            ? field
            : throw new InvalidOperationException(
                $"TaskHubGrpcServer.{name} is missing: the in-process test host changed; review {nameof(ReconnectingTaskHubServer)}.");
}

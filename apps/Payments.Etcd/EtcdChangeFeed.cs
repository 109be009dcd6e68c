using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;

namespace Payments.Etcd;

/// <summary>What was put under one key prefix after a revision, from an etcd watch kept open between reads: etcd's own
/// change feed, which costs what changed. A range with <c>MinModRevision</c> asks the same question, but etcd answers it
/// by reading every key under the prefix, whatever the range's limit (etcd <c>server/etcdserver/txn</c>,
/// <c>rangeLimit</c>: "fetch everything; sort and truncate afterwards"): 300 ms of etcd CPU per call at 200,000 keys
/// (docs/benchmarks.md), however little changed.</summary>
/// <remarks>
/// <para>Puts only (etcd's <c>NODELETE</c> filter). Changes are held in revision order, up to <see cref="Capacity"/>
/// (and one response more, at most etcd's request limit in bytes: responses are fragmented): a full feed stops reading
/// its stream, and etcd holds the rest back (its slow-watcher path, replayed from history).</para>
/// <para>How far the feed is complete — every put up to that revision received — is known two ways: a change at
/// revision r means every change before r came (one watch delivers in revision order, each revision whole); a progress
/// notification at revision h, which <see cref="RefreshAsync"/> asks for, means every change up to h came (etcd sends it
/// only once the watch has caught up, after the events before it: <c>watchableStore.progressIfSync</c>).</para>
/// <para>Not thread-safe for callers: one reader (a shipper's loop) calls <see cref="RefreshAsync"/> and
/// <see cref="Held"/>; the stream is read in the background.</para>
/// </remarks>
public sealed class EtcdChangeFeed(EtcdConnection etcd, string prefix, int capacity = EtcdChangeFeed.DefaultCapacity) : IAsyncDisposable
{
    /// <summary>Changes held at most; one etcd transaction holds at most 128, so a revision always fits.</summary>
    public const int DefaultCapacity = 4096;

    /// <summary>How long closing a stream waits for its reader to end.</summary>
    private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(5);

    /// <summary>How long to wait for a progress notification before asking again.</summary>
    private static readonly TimeSpan ProgressRetry = TimeSpan.FromMilliseconds(150);

    private readonly Lock gate = new();
    private readonly List<Change> held = [];
    private AsyncDuplexStreamingCall<WatchRequest, WatchResponse>? stream;
    private CancellationTokenSource? reading;
    private Task reader = Task.CompletedTask;
    private int member;
    private long floor = -1;
    private long complete;
    private long progressNotifications;
    private TaskCompletionSource progressed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource room = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Exception? broken;
    private int generation; // the current stream's: a closed stream's reader, still ending, changes nothing

    /// <summary>A put: its key (without the prefix), value and revision.</summary>
    public readonly record struct Change(string Key, ByteString Value, long Revision);

    public string Prefix => prefix;

    public int Capacity => capacity;

    /// <summary>Makes the feed deliver what was put after <paramref name="afterRevision"/>: reopens its watch there if it
    /// was opened later or broke, drops what it holds up to there, then asks etcd how far the feed is complete and waits
    /// at most <paramref name="wait"/> for the answer — unless it already holds <paramref name="enough"/> changes. Returns
    /// the revision through which it is complete (at least <paramref name="afterRevision"/>).</summary>
    /// <exception cref="EtcdCompactedException">etcd no longer has the revisions after <paramref name="afterRevision"/>.</exception>
    /// <exception cref="RpcException">The watch could not be opened or broke (the next call reopens it).</exception>
    public async Task<long> RefreshAsync(long afterRevision, TimeSpan wait, CancellationToken cancellationToken, int enough = int.MaxValue)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(afterRevision);
        Exception? failed;
        lock (gate)
        {
            failed = broken;
        }

        if (stream is null || failed is not null || afterRevision < floor)
        {
            if (failed is RpcException)
            {
                etcd.MoveOff(member); // the member that broke it: the next stream goes to another
            }

            await OpenAsync(afterRevision, cancellationToken);
        }

        bool asking;
        lock (gate)
        {
            floor = Math.Max(floor, afterRevision);
            complete = Math.Max(complete, floor);
            if (held.RemoveAll(change => change.Revision <= floor) > 0)
            {
                room.TrySetResult();
            }

            asking = held.Count(change => change.Revision <= complete) < enough;
        }

        if (asking)
        {
            await AskProgressAsync(wait, cancellationToken);
        }

        lock (gate)
        {
            if (broken is not null)
            {
                throw broken is EtcdCompactedException or RpcException ? broken : new RpcException(new Status(StatusCode.Unavailable, broken.Message));
            }

            return complete;
        }
    }

    /// <summary>The changes held, through <paramref name="throughRevision"/>, in revision order.</summary>
    public IReadOnlyList<Change> Held(long throughRevision)
    {
        lock (gate)
        {
            return held.Where(change => change.Revision <= throughRevision).ToArray();
        }
    }

    public async ValueTask DisposeAsync() => await CloseAsync();

    /// <summary>Asks etcd for a progress notification, again every <see cref="ProgressRetry"/>, for at most
    /// <paramref name="wait"/>. etcd answers only once the watch has caught up, after the events before it (3.5.8+,
    /// etcd-io/etcd#15237); a request made before may go unanswered (etcd-io/etcd#17507), so it is asked again.</summary>
    private async Task AskProgressAsync(TimeSpan wait, CancellationToken cancellationToken)
    {
        long seen;
        Task answered;
        lock (gate)
        {
            seen = progressNotifications;
            answered = progressed.Task;
        }

        var deadline = Environment.TickCount64 + (long)wait.TotalMilliseconds;
        while (Volatile.Read(ref progressNotifications) == seen && !answered.IsCompleted)
        {
            var left = deadline - Environment.TickCount64;
            if (left <= 0)
            {
                return; // no answer: complete as far as the changes tell
            }

            await WriteAsync(stream!, new WatchRequest { ProgressRequest = new WatchProgressRequest() }, cancellationToken);
            try
            {
                await answered.WaitAsync(TimeSpan.FromMilliseconds(Math.Min(left, ProgressRetry.TotalMilliseconds)), cancellationToken);
            }
            catch (TimeoutException)
            {
                // not yet: ask again
            }
        }
    }

    private async Task OpenAsync(long afterRevision, CancellationToken cancellationToken)
    {
        await CloseAsync();
        reading = new CancellationTokenSource();
        member = etcd.CurrentEndpoint;
        var call = etcd.Watches.Watch(EtcdPrefixWatch.RequireLeader, cancellationToken: reading.Token);
        int current;
        lock (gate)
        {
            current = ++generation;
            held.Clear();
            floor = afterRevision;
            complete = afterRevision;
            broken = null;
            progressed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        var create = new WatchCreateRequest
        {
            Key = EtcdBytes.Key(prefix), RangeEnd = EtcdBytes.PrefixEnd(prefix), StartRevision = afterRevision + 1,
            // A watch catching up sends up to 1,000 revisions in one response: megabytes of journal, past what a gRPC
            // client takes (4 MiB). Fragments stay under etcd's request limit (--max-request-bytes, 1.5 MiB).
            Fragment = true,
        };
        create.Filters.Add(WatchCreateRequest.Types.FilterType.Nodelete);
        stream = call;
        reader = ReadAsync(call, current, reading.Token);
        await WriteAsync(call, new WatchRequest { CreateRequest = create }, cancellationToken);
    }

    /// <summary>A write to a stream etcd has just ended (a member stopping) is refused by gRPC as an invalid operation:
    /// it is the same fault as a broken watch, and the next refresh reopens the stream.</summary>
    private async Task WriteAsync(AsyncDuplexStreamingCall<WatchRequest, WatchResponse> call, WatchRequest request, CancellationToken cancellationToken)
    {
        try
        {
            await call.RequestStream.WriteAsync(request, cancellationToken);
        }
        catch (InvalidOperationException exception)
        {
            var broke = new RpcException(new Status(StatusCode.Unavailable, $"The watch on {prefix} has ended: {exception.Message}"));
            lock (gate)
            {
                broken ??= broke;
            }

            throw broke;
        }
    }

    private async Task CloseAsync()
    {
        if (stream is not { } call)
        {
            return;
        }

        await reading!.CancelAsync();
        try
        {
            await reader.WaitAsync(CloseTimeout);
        }
        catch (TimeoutException)
        {
            // the reader ends with its cancelled stream; nothing waits for it
        }

        call.Dispose();
        reading.Dispose();
        stream = null;
        reading = null;
        lock (gate)
        {
            generation++;
            held.Clear();
        }
    }

    /// <summary>Reads the stream until it ends: puts into <see cref="held"/> (waiting for room), progress into
    /// <see cref="complete"/>, and why it ended into <see cref="broken"/>.</summary>
    private async Task ReadAsync(AsyncDuplexStreamingCall<WatchRequest, WatchResponse> call, int current, CancellationToken cancellationToken)
    {
        try
        {
            while (await call.ResponseStream.MoveNext(cancellationToken))
            {
                var response = call.ResponseStream.Current;
                if (response.Canceled)
                {
                    Fail(current, response.CompactRevision > 0
                        ? new EtcdCompactedException(prefix, response.CompactRevision)
                        : new RpcException(new Status(StatusCode.Unavailable, $"etcd cancelled the watch on {prefix}: {response.CancelReason}")));
                    return;
                }

                if (response.Events.Count == 0)
                {
                    if (!response.Created)
                    {
                        Progress(current, response.Header.Revision); // a progress notification: every put up to here came
                    }

                    continue;
                }

                while (!HasRoom(current, out var full))
                {
                    await full.WaitAsync(cancellationToken); // held is full: wait until a refresh drops what was shipped
                }

                Take(current, response.Events, response.Fragment);
            }

            Fail(current, new RpcException(new Status(StatusCode.Unavailable, $"etcd ended the watch on {prefix}")));
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // closed by this feed
        }
        catch (RpcException exception)
        {
            Fail(current, exception);
        }
    }

    /// <summary>Whether held has room for another response (else <paramref name="full"/> completes when it has). A
    /// response is taken whole, so held may pass its capacity by one (a fragment of at most 1.5 MiB).</summary>
    private bool HasRoom(int current, out Task full)
    {
        lock (gate)
        {
            full = Task.CompletedTask;
            if (current != generation || held.Count < capacity)
            {
                return true;
            }

            room = room.Task.IsCompleted ? new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) : room;
            full = room.Task;
            return false;
        }
    }

    /// <summary>Holds a response's puts (those after the floor: the rest were shipped); the feed is then complete
    /// through its last revision, each revision coming whole — or, for a fragment with more to follow, through the
    /// revision before its last (a revision may go on in the next fragment).</summary>
    private void Take(int current, IReadOnlyList<Mvccpb.Event> events, bool moreFragments)
    {
        lock (gate)
        {
            if (current != generation)
            {
                return; // a closed stream's
            }

            foreach (var kv in events.Select(change => change.Kv).Where(kv => kv.ModRevision > floor))
            {
                held.Add(new Change(kv.Key.ToStringUtf8()[prefix.Length..], kv.Value, kv.ModRevision));
            }

            complete = Math.Max(complete, events[^1].Kv.ModRevision - (moreFragments ? 1 : 0));
        }
    }

    private void Progress(int current, long revision)
    {
        lock (gate)
        {
            if (current != generation)
            {
                return;
            }

            complete = Math.Max(complete, revision);
            progressNotifications++;
            progressed.TrySetResult();
            progressed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
    }

    private void Fail(int current, Exception exception)
    {
        lock (gate)
        {
            if (current == generation)
            {
                broken = exception;
                progressed.TrySetResult();
            }
        }
    }
}

/// <summary>etcd has compacted away the revisions a watch was to start from: what changed there is no longer in its
/// history, only in its current keys.</summary>
public sealed class EtcdCompactedException(string prefix, long compactRevision)
    : InvalidOperationException($"etcd has compacted the history of {prefix} up to revision {compactRevision}.")
{
    public long CompactRevision => compactRevision;
}

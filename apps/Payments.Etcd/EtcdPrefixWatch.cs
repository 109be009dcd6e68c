using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Mvccpb;

namespace Payments.Etcd;

/// <summary>One etcd watch on a key prefix, kept open for the life of an app and reopened (on the next member, with
/// capped backoff) whenever it breaks. Whoever caches what lives under the prefix subscribes: each change is passed
/// on, and every (re)start is announced first, because events between the old stream's end and the new one's start
/// are not replayed — a subscriber drops its cache then, so a missed event costs a re-read, never a stale answer.</summary>
/// <remarks>The stream carries etcd's "require leader" metadata (etcd <c>api/v3rpc/rpctypes/md.go</c>,
/// <c>MetadataRequireLeaderKey</c>): a member cut off from the quorum cancels it instead of silently going quiet, and
/// HTTP/2 keep-alive pings (<see cref="EtcdConnection"/>) find a frozen member.</remarks>
public sealed class EtcdPrefixWatch(EtcdConnection etcd, string prefix, ILogger logger, TimeProvider? time = null)
{
    /// <summary>Longest wait between attempts to reopen a broken watch.</summary>
    public static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(2);

    /// <summary>How long opening a watch may take before it counts as broken.</summary>
    public static readonly TimeSpan OpenTimeout = TimeSpan.FromSeconds(5);

    private static readonly TimeSpan MinBackoff = TimeSpan.FromMilliseconds(100);
    /// <summary>etcd's "require leader" metadata for a watch stream (see the remarks); the change feed sends it too.</summary>
    internal static readonly Metadata RequireLeader = new() { { "hasleader", "true" } };
    private readonly TimeProvider clock = time ?? TimeProvider.System;
    private readonly string? end;
    private int healthy;

    /// <summary>Where the watched range ends (exclusive; a key under the prefix), or null for the whole prefix: a
    /// subscriber whose keys share the prefix with busier ones it does not need (markers sorted after its keys) is not
    /// sent their events.</summary>
    public string? End
    {
        get => end;
        init => end = value is null || (value.StartsWith(prefix, StringComparison.Ordinal) && value.Length > prefix.Length)
            ? value
            : throw new ArgumentException($"A watch on {prefix} must end at a key under it, not at {value}.", nameof(End));
    }

    /// <summary>True: deletions are not sent (etcd's <c>NODELETE</c> filter), for a subscriber that ignores them.</summary>
    public bool PutsOnly { get; init; }

    /// <summary>True while a watch stream is open and confirmed by etcd; subscribers that cannot trust their cache
    /// without it (it is what evicts revoked entries) check this.</summary>
    public bool IsWatching => Volatile.Read(ref healthy) == 1;

    /// <summary>Watches until <paramref name="cancellationToken"/> ends.</summary>
    /// <param name="onStart">Called when a stream is confirmed, before its first event: drop whatever was cached.</param>
    /// <param name="onChange">Called for each change with the key (without <paramref name="prefix"/>) and whether it
    /// was deleted.</param>
    public Task RunAsync(Action onStart, Action<string, bool> onChange, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(onChange);
        return RunWithValuesAsync(onStart, (key, value) => onChange(key, value is null), cancellationToken);
    }

    /// <summary>Like <see cref="RunAsync"/>, passing each change's new value (null: the key was deleted) — what the stream carries
    /// anyway, so a subscriber that needs the value need not read it again.</summary>
    public Task RunWithValuesAsync(Action onStart, Action<string, ByteString?> onChange, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(onChange);
        return RunWithRevisionsAsync(onStart, (key, value, _) => onChange(key, value), cancellationToken);
    }

    /// <summary>Like <see cref="RunWithValuesAsync"/>, passing each change's revision too: a subscriber that also reads
    /// the prefix can tell the changes its read already saw (at or below the read's revision) from those after it.</summary>
    public Task RunWithRevisionsAsync(Action onStart, Action<string, ByteString?, long> onChange, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(onStart);
        return RunLoopAsync(_ => Task.FromResult(0L), onStart, onChange, cancellationToken);
    }

    /// <summary>Keeps a copy of the prefix: before each (re)start <paramref name="load"/> reads what is stored and returns
    /// the revision it read at, and the watch starts right after that revision, so each change after the read is passed
    /// on (with its revision) and none before it. A load that fails, or a watch whose start etcd has compacted away, is
    /// retried like a broken watch: loaded again, then watched again.</summary>
    public Task RunMirrorAsync(Func<CancellationToken, Task<long>> load, Action<string, ByteString?, long> onChange, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(load);
        return RunLoopAsync(load, () => { }, onChange, cancellationToken);
    }

    private async Task RunLoopAsync(
        Func<CancellationToken, Task<long>> load, Action onStart, Action<string, ByteString?, long> onChange, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(onChange);
        var backoff = MinBackoff;
        while (!cancellationToken.IsCancellationRequested)
        {
            var member = etcd.CurrentEndpoint;
            try
            {
                var loadedAt = await load(cancellationToken);
                await WatchOnceAsync(loadedAt, onStart, onChange, () => backoff = MinBackoff, cancellationToken);
            }
            catch (Exception exception) when (exception is RpcException or OperationCanceledException or InvalidOperationException
                && !cancellationToken.IsCancellationRequested)
            {
                logger.LogDebug(exception, "Watch on {Prefix} broke; reopening", prefix);
            }
            catch (Exception exception) when (!cancellationToken.IsCancellationRequested)
            {
                // Anything else (a value its handler cannot read): reopened too, with the backoff. Left to end the loop,
                // it stopped the watch for good without a word — a replica's API key mirror among them, so revocations
                // reached it only through the unwatched cache window and every request cost an etcd read.
                logger.LogWarning(exception, "Watch on {Prefix} failed unexpectedly; reopening", prefix);
                backoff = MaxBackoff; // a handler that keeps failing must not reopen (and reload) ten times a second
            }
            catch (Exception exception) when (exception is RpcException or OperationCanceledException && cancellationToken.IsCancellationRequested)
            {
                return; // stopped: gRPC reports a cancelled stream as an RpcException
            }
            finally
            {
                Volatile.Write(ref healthy, 0);
            }

            etcd.MoveOff(member);
            try
            {
                await Task.Delay(backoff, clock, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
        }
    }

    /// <param name="afterRevision">0: from now; else from the revision after it.</param>
    private WatchCreateRequest CreateRequest(long afterRevision)
    {
        var create = new WatchCreateRequest
        {
            Key = EtcdBytes.Key(prefix), RangeEnd = End is null ? EtcdBytes.PrefixEnd(prefix) : EtcdBytes.Key(End),
            StartRevision = afterRevision > 0 ? afterRevision + 1 : 0,
        };
        if (PutsOnly)
        {
            create.Filters.Add(WatchCreateRequest.Types.FilterType.Nodelete);
        }

        return create;
    }

    private async Task WatchOnceAsync(
        long afterRevision, Action onStart, Action<string, ByteString?, long> onChange, Action opened, CancellationToken cancellationToken)
    {
        using var stream = etcd.Watches.Watch(RequireLeader, cancellationToken: cancellationToken);
        await stream.RequestStream.WriteAsync(new WatchRequest
        {
            CreateRequest = CreateRequest(afterRevision),
        }, cancellationToken);
        using (var openDeadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            openDeadline.CancelAfter(OpenTimeout);
            if (!await stream.ResponseStream.MoveNext(openDeadline.Token) || !stream.ResponseStream.Current.Created
                || stream.ResponseStream.Current.Canceled)
            {
                throw new InvalidOperationException($"etcd did not open the watch on {prefix}: {stream.ResponseStream.Current?.CancelReason}");
            }
        }

        Volatile.Write(ref healthy, 1);
        opened();
        onStart();
        while (await stream.ResponseStream.MoveNext(cancellationToken))
        {
            var response = stream.ResponseStream.Current;
            if (response.Canceled)
            {
                throw new InvalidOperationException($"etcd cancelled the watch on {prefix}: {response.CancelReason}");
            }

            foreach (var change in response.Events)
            {
                onChange(change.Kv.Key.ToStringUtf8()[prefix.Length..], change.Type == Event.Types.EventType.Delete ? null : change.Kv.Value, change.Kv.ModRevision);
            }
        }
    }
}

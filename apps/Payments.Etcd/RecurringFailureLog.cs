using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace Payments.Etcd;

/// <summary>The log of a loop that retries every few seconds (a sweeper, a maintenance pass): while its failures last
/// it writes one line when they start, one a minute while they go on, and one when a pass succeeds again — not a
/// line, and a stack trace, every pass. A fault probe with etcd away for minutes found the hold-expiry sweeper writing a
/// trace every second, the orchestrator's sweeper and etcd's maintenance each one a pass: the line that says what is
/// wrong scrolled away under copies of itself.</summary>
/// <remarks>A dependency being away (<see cref="IsAway"/>, or what the caller adds) is logged as a warning with its
/// message only: its stack trace says nothing the message does not. Anything else is a defect and is logged as an
/// error with its stack trace, the first time it is seen in a streak and each time it changes (another exception
/// type or gRPC status, or an outage turning into it). Not thread-safe: one loop owns one.</remarks>
public sealed class RecurringFailureLog(ILogger logger, string what, TimeProvider time, Func<Exception, bool>? alsoAway = null)
{
    /// <summary>At most one line per <see cref="RepeatEvery"/> while the same failure goes on.</summary>
    public static readonly TimeSpan RepeatEvery = TimeSpan.FromMinutes(1);

    private DateTimeOffset? since;
    private DateTimeOffset lastLine;
    private int failures;
    private string? lastKind;

    /// <summary>Whether the loop is failing now (a pass failed since the last that succeeded).</summary>
    public bool Failing => since is not null;

    /// <summary>etcd (or a peer reached over gRPC) away or too slow to answer: unavailable, a call past its deadline,
    /// a connection that stopped answering its keep-alive pings (Internal), or a call's own timeout.</summary>
    public static bool IsAway(Exception exception) =>
        exception is RpcException { StatusCode: StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Internal or StatusCode.Cancelled }
            or OperationCanceledException or TimeoutException or EtcdContentionException;

    /// <summary>An HTTP call that got no answer, or the gateway's "not there" (502, 503, 504): a peer away, not one
    /// that answered an error (a 500 is a defect and keeps its trace).</summary>
    public static bool IsAwayOverHttp(Exception exception) =>
        exception is HttpRequestException { StatusCode: null or System.Net.HttpStatusCode.BadGateway or System.Net.HttpStatusCode.ServiceUnavailable or System.Net.HttpStatusCode.GatewayTimeout };

    public void Failed(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        var now = time.GetUtcNow();
        failures++;
        var away = IsAway(exception) || alsoAway?.Invoke(exception) == true;
        // The kind: any outage is one (an outage alternating between two exception types is not a change each pass);
        // a defect is its type and gRPC status (Unavailable turning into PermissionDenied is said at once).
        var kind = away ? "away" : $"{exception.GetType().FullName}/{(exception as RpcException)?.StatusCode}";
        var changed = kind != lastKind;
        lastKind = kind;
        if (since is null)
        {
            since = now;
        }
        else if (!changed && now - lastLine < RepeatEvery)
        {
            return;
        }

        lastLine = now;
        var elapsed = now - since.Value;
        if (away)
        {
            logger.LogWarning("{What} failed: {Error} ({Failures} failed passes in {Elapsed:0} s); retrying, one line a minute while it lasts",
                what, exception.Message, failures, elapsed.TotalSeconds);
        }
        else
        {
            logger.LogError(exception, "{What} failed unexpectedly ({Failures} failed passes in {Elapsed:0} s); retrying, one line a minute while it lasts",
                what, failures, elapsed.TotalSeconds);
        }
    }

    public void Succeeded()
    {
        if (since is null)
        {
            return;
        }

        logger.LogWarning("{What} succeeded again after {Failures} failed passes in {Elapsed:0} s", what, failures, (time.GetUtcNow() - since.Value).TotalSeconds);
        since = null;
        failures = 0;
        lastKind = null;
    }
}

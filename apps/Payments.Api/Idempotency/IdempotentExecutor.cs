using System.Diagnostics;
using Payments.Api.Problems;
using Payments.Domain;
using Payments.Etcd;

namespace Payments.Api.Idempotency;

/// <summary>Stripe's Idempotency-Key semantics around a handler: the first request with a key runs; the same key
/// with the same body gets the first response again (same status, same body); with another body, 422. A request
/// arriving while the first still runs waits for it (bounded, woken by <see cref="InFlightWaits"/>), then replays it.
/// Once the key's record expired (<see cref="IdempotencyStore.Retention"/>) the key starts a new operation.</summary>
public sealed class IdempotentExecutor(IdempotencyStore store, InFlightWaits waits, RefusalsKept refusals)
{
    public const string Header = "Idempotency-Key";

    /// <summary>How long a duplicate waits for the request holding its key (real time: it is a live request's wait).</summary>
    public static readonly TimeSpan MaxWaitForInFlight = TimeSpan.FromSeconds(10);

    /// <summary>Reads of the record per wait at most: a record taken over again and again still ends the wait.</summary>
    private const int MaxWaitRounds = 100;

    /// <summary>Parses the header; a problem reply when it is missing or malformed.</summary>
    public static (IdempotencyKey? Key, Reply? Problem) KeyOf(HttpContext context)
    {
        var values = context.Request.Headers[Header];
        if (values.Count == 0)
        {
            return (null, Reply.Problem(StatusCodes.Status400BadRequest, ProblemTypes.IdempotencyKeyMissing,
                "This operation needs an Idempotency-Key header.", "Send a unique Idempotency-Key (1–255 characters) with each new request, and the same one when you retry it."));
        }

        // Two header lines, or two joined by a proxy on the way (the edge forwards them as one "a, b": a key never
        // holds a space, so ", " can only be the join).
        if (values.Count > 1 || values[0]?.Contains(", ", StringComparison.Ordinal) == true)
        {
            // Two keys: which one the retry would send is anyone's guess (the detail said "must not be empty").
            return (null, Reply.Problem(StatusCodes.Status400BadRequest, ProblemTypes.IdempotencyKeyInvalid, "The Idempotency-Key header is invalid.",
                "Send the Idempotency-Key header once, with one key."));
        }

        return IdempotencyKey.TryParse(values[0], out var key, out var problem)
            ? (key, null)
            : (null, Reply.Problem(StatusCodes.Status400BadRequest, ProblemTypes.IdempotencyKeyInvalid, "The Idempotency-Key header is invalid.", problem));
    }

    /// <summary>Middleware: a malformed Idempotency-Key is refused wherever it is sent (docs/api.md), not only where a
    /// key is required. Ignored elsewhere (opening an account, a review decision, a deletion), a client that meant
    /// its retries to be safe was never told its key was not read.</summary>
    public static Task RefuseInvalidKeyAsync(HttpContext context, RequestDelegate next) =>
        context.Request.Headers.ContainsKey(Header) && KeyOf(context).Problem is { } problem
            ? problem.ToResult().ExecuteAsync(context)
            : next(context);

    /// <summary>The Idempotency-Key and the raw body of an idempotent request, or the problem with either.</summary>
    public static async Task<(IdempotencyKey? Key, byte[]? Body, Reply? Problem)> ReadRequestAsync(HttpContext context)
    {
        var (key, keyProblem) = KeyOf(context);
        if (keyProblem is not null)
        {
            return (null, null, keyProblem);
        }

        var (body, bodyProblem) = await Apis.RequestBody.ReadAsync(context);
        return (key, body, bodyProblem);
    }

    /// <summary>Runs <paramref name="handler"/> once per key and body, or answers for the run that did. The handler
    /// gets the claim: the ids of what it creates derive from its lifetime (<see cref="IdempotencyStore.OperationId"/>).
    /// <paramref name="path"/> is the endpoint's documented path, not the request's: routing matches a path in any
    /// case and with a trailing slash, so a retry sent to <c>/V1/Payments/</c> is the same request as the first.</summary>
    /// <param name="afterWait">Asked after a wait for the request in flight (up to <see cref="MaxWaitForInFlight"/>):
    /// an answer instead of the replay or the run (the caller's key revoked meanwhile: a probe found a status wait
    /// answering with a revoked key, and this wait is the same), or null to go on.</param>
    public async Task<Reply> RunAsync(
        string merchantId, IdempotencyKey key, string method, string path, byte[] body, Func<IdempotencyClaim, Task<Reply>> handler,
        CancellationToken cancellationToken, Func<Task<Reply?>>? afterWait = null)
    {
        var fingerprint = IdempotencyStore.Fingerprint(method, path, Convert.ToBase64String(body));
        var begin = await store.BeginAsync(merchantId, key, fingerprint, cancellationToken);
        if (begin is IdempotencyBegin.InProgress inProgress)
        {
            begin = await WaitForInFlightAsync(merchantId, key, fingerprint, inProgress, cancellationToken);
            if (afterWait is not null && await afterWait() is { } instead)
            {
                if (begin is IdempotencyBegin.Started taken)
                {
                    await ReleaseAfterFailureAsync(taken.Claim); // taken over from a request that ended: the key's next retry runs
                }

                return instead;
            }
        }

        return begin switch
        {
            IdempotencyBegin.Started started => await ExecuteAsync(merchantId, started.Claim, handler, cancellationToken),
            IdempotencyBegin.Replay replay => new Reply(replay.StatusCode, replay.Body, replay.ContentType ?? Reply.JsonContentType),
            IdempotencyBegin.FingerprintMismatch => Reply.Problem(StatusCodes.Status422UnprocessableEntity, ProblemTypes.IdempotencyKeyReuse,
                "This Idempotency-Key was used with a different request.", "Use a new Idempotency-Key for a different request."),
            IdempotencyBegin.InProgress stillRunning => InUse(stillRunning.RetryAfter),
            _ => throw new InvalidOperationException($"Unknown idempotency outcome {begin}."),
        };
    }

    /// <summary>The answer to a request its endpoint refuses as invalid before touching its key: the answer the key
    /// already holds for this very request if there is one (one read, nothing written), else <paramref name="refusal"/>.
    /// A rule added since (a blank reference refused) must not answer the retry of a payment accepted under the old
    /// rules with a 400, which tells its client the payment did not happen while it goes on. Not covered: a key whose
    /// first request crashed mid-way (its claim ran out, no answer kept) or whose record is in the other region only;
    /// those are refused, as before this read.</summary>
    public async Task<Reply> AnsweredOrAsync(
        string merchantId, IdempotencyKey key, string method, string path, byte[] body, Reply refusal, CancellationToken cancellationToken)
    {
        var fingerprint = IdempotencyStore.Fingerprint(method, path, Convert.ToBase64String(body));
        IdempotencyBegin? held;
        try
        {
            held = await store.PeekAsync(merchantId, key, fingerprint, cancellationToken);
        }
        catch (Exception exception) when (RecurringFailureLog.IsAway(exception) && !cancellationToken.IsCancellationRequested)
        {
            // etcd away: whether this request was accepted before cannot be told, and a 400 would say it was not.
            return Reply.Unavailable("Whether this request was answered before cannot be read now; retry with the same Idempotency-Key.");
        }

        return held switch
        {
            IdempotencyBegin.Replay replay => new Reply(replay.StatusCode, replay.Body, replay.ContentType ?? Reply.JsonContentType),
            IdempotencyBegin.InProgress inProgress => InUse(inProgress.RetryAfter),
            _ => refusal,
        };
    }

    /// <summary>409 <c>idempotency-key-in-use</c>, with when to retry (docs/api.md).</summary>
    public static Reply InUse(TimeSpan retryAfter) => Reply.Problem(StatusCodes.Status409Conflict, ProblemTypes.IdempotencyKeyInUse,
        "A request with this Idempotency-Key is still being processed.", "Retry after a moment with the same key.",
        new Dictionary<string, object?> { ["retryAfterSeconds"] = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)) });

    /// <summary>As <see cref="RunAsync"/>, with a first attempt that claims nothing (<see cref="IdempotencyStore.UnclaimedAsync"/>):
    /// the handler reads the key's record with its own reads, and its own transaction creates the record with the
    /// answer only if the key still has none. It answers null when the key has a record or was taken meanwhile —
    /// having written nothing — and the request then goes the claimed way, which answers a retry, a duplicate in
    /// flight and another body as always. A new key costs one Raft entry fewer (no claim); a retry one read more.</summary>
    public async Task<Reply> RunUnclaimedFirstAsync(
        string merchantId, IdempotencyKey key, string method, string path, byte[] body, Func<IdempotencyClaim, Task<Reply?>> handler,
        CancellationToken cancellationToken, Func<Task<Reply?>>? afterWait = null)
    {
        ArgumentNullException.ThrowIfNull(handler);
        var fingerprint = IdempotencyStore.Fingerprint(method, path, Convert.ToBase64String(body));
        var unclaimed = await store.UnclaimedAsync(merchantId, key, fingerprint, cancellationToken);
        // A fault propagates: there is no claim to release, and a record the handler's transaction did write holds
        // the answer for the client's retry.
        if (await handler(unclaimed) is { } reply && await KeptAsync(merchantId, unclaimed, reply, cancellationToken))
        {
            return reply;
        }

        return await RunAsync(merchantId, key, method, path, body,
            async claim => await handler(claim) ?? throw new InvalidOperationException("A claimed request must be answered."), cancellationToken, afterWait);
    }

    /// <summary>Whether an unclaimed attempt's answer stands: stored by its own transaction, not one to keep (a server
    /// error, a 429, a refusal past <see cref="RefusalsKept"/>: nothing was written), or stored now as the key's first record.</summary>
    private async Task<bool> KeptAsync(string merchantId, IdempotencyClaim unclaimed, Reply reply, CancellationToken cancellationToken) =>
        reply.Recorded
        || reply.IsServerError
        || reply.StatusCode == StatusCodes.Status429TooManyRequests
        || !refusals.Keep(merchantId, reply)
        || await store.CompleteAsync(unclaimed, reply.StatusCode, reply.Body, reply.ContentType, cancellationToken);

    /// <summary>Waits (bounded) until the request holding the key finishes or lets it go, reading the record (no
    /// write) when it changes or every <see cref="InFlightWaits.RecheckInterval"/>; claims it only when it is free.
    /// Answers as <see cref="IdempotencyStore.BeginAsync"/> does; still InProgress when the wait ran out or when too
    /// many requests wait on this replica already.</summary>
    private async Task<IdempotencyBegin> WaitForInFlightAsync(
        string merchantId, IdempotencyKey key, string fingerprint, IdempotencyBegin.InProgress inProgress, CancellationToken cancellationToken)
    {
        using var place = waits.TryEnter();
        if (place is null)
        {
            return inProgress;
        }

        var waited = Stopwatch.StartNew();
        IdempotencyBegin current = inProgress;
        for (var round = 1; round <= MaxWaitRounds && current is IdempotencyBegin.InProgress; round++)
        {
            var remaining = MaxWaitForInFlight - waited.Elapsed;
            if (remaining <= TimeSpan.Zero)
            {
                break;
            }

            var change = waits.NextChangeAsync(inProgress.RecordKey); // before the read: a change after it wakes us
            current = await store.PeekAsync(merchantId, key, fingerprint, cancellationToken)
                      ?? await store.BeginAsync(merchantId, key, fingerprint, cancellationToken);
            if (current is IdempotencyBegin.InProgress)
            {
                try
                {
                    await change.WaitAsync(remaining < InFlightWaits.RecheckInterval ? remaining : InFlightWaits.RecheckInterval, cancellationToken);
                }
                catch (TimeoutException)
                {
                    // No event within the interval: read again anyway.
                }
            }
        }

        return current;
    }

    private async Task<Reply> ExecuteAsync(string merchantId, IdempotencyClaim claim, Func<IdempotencyClaim, Task<Reply>> handler, CancellationToken cancellationToken)
    {
        Reply reply;
        try
        {
            reply = await handler(claim);
        }
        catch
        {
            // Nothing recorded: the client's retry with the same key runs again, on the same operation id (handlers
            // are idempotent by id, and a release keeps the key's lifetime).
            await ReleaseAfterFailureAsync(claim);
            throw;
        }

        if (reply.Recorded)
        {
            return reply;
        }

        if (reply.IsServerError || reply.StatusCode == StatusCodes.Status429TooManyRequests || !refusals.Keep(merchantId, reply))
        {
            // Not an answer to keep: "retry later" must not be replayed to the retry; a refusal past the budget moved
            // nothing, and its retry may run again (the released claim keeps only the key's body fingerprint).
            await store.ReleaseAsync(claim, CancellationToken.None);
            return reply;
        }

        try
        {
            await store.CompleteAsync(claim, reply.StatusCode, reply.Body, reply.ContentType, cancellationToken);
        }
        catch
        {
            // The outcome could not be recorded (etcd failed): release the claim so the client's retry re-runs the
            // idempotent handler at once and gets the same answer, instead of 409s until the claim times out.
            await ReleaseAfterFailureAsync(claim);
            throw;
        }

        return reply;
    }

    /// <summary>Best effort, already retried: if even that fails the claim expires after
    /// <see cref="IdempotencyStore.InProgressTimeout"/>; the original failure is what the caller reports.</summary>
    private async Task ReleaseAfterFailureAsync(IdempotencyClaim claim)
    {
        try
        {
            await store.ReleaseAsync(claim, CancellationToken.None);
        }
        catch (Exception exception) when (exception is Grpc.Core.RpcException or OperationCanceledException)
        {
            // Deliberately swallowed (see above).
        }
    }
}

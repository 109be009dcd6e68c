using System.Diagnostics;
using Payments.Api.Problems;
using Payments.Domain;
using Payments.Etcd;

namespace Payments.Api.Idempotency;

/// <summary>Stripe's Idempotency-Key semantics around a handler: the first request with a key runs; the same key
/// with the same body gets the first response again (same status, same body); with another body, 422. A request
/// arriving while the first still runs waits for it (bounded), then replays it.</summary>
public sealed class IdempotentExecutor(IdempotencyStore store)
{
    public const string Header = "Idempotency-Key";
    public static readonly TimeSpan MaxWaitForInFlight = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan WaitPollInterval = TimeSpan.FromMilliseconds(50);

    /// <summary>Parses the header; a problem reply when it is missing or malformed.</summary>
    public static (IdempotencyKey? Key, Reply? Problem) KeyOf(HttpContext context)
    {
        var values = context.Request.Headers[Header];
        if (values.Count == 0)
        {
            return (null, Reply.Problem(StatusCodes.Status400BadRequest, ProblemTypes.IdempotencyKeyMissing,
                "This operation needs an Idempotency-Key header.", "Send a unique Idempotency-Key (1–255 characters) with each new request, and the same one when you retry it."));
        }

        return IdempotencyKey.TryParse(values.Count == 1 ? values[0] : null, out var key, out var problem)
            ? (key, null)
            : (null, Reply.Problem(StatusCodes.Status400BadRequest, ProblemTypes.IdempotencyKeyInvalid, "The Idempotency-Key header is invalid.", problem));
    }

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

    public async Task<Reply> RunAsync(
        string merchantId, IdempotencyKey key, string method, string path, byte[] body, Func<Task<Reply>> handler, CancellationToken cancellationToken)
    {
        var fingerprint = IdempotencyStore.Fingerprint(method, path, Convert.ToBase64String(body));
        var waited = Stopwatch.StartNew();
        while (true)
        {
            switch (await store.BeginAsync(merchantId, key, fingerprint, cancellationToken))
            {
                case IdempotencyBegin.Started started:
                    return await ExecuteAsync(started.Claim, handler, cancellationToken);
                case IdempotencyBegin.Replay replay:
                    return new Reply(replay.StatusCode, replay.Body, replay.ContentType ?? Reply.JsonContentType);
                case IdempotencyBegin.FingerprintMismatch:
                    return Reply.Problem(StatusCodes.Status422UnprocessableEntity, ProblemTypes.IdempotencyKeyReuse,
                        "This Idempotency-Key was used with a different request.", "Use a new Idempotency-Key for a different request.");
                case IdempotencyBegin.InProgress inProgress when waited.Elapsed >= MaxWaitForInFlight:
                    return Reply.Problem(StatusCodes.Status409Conflict, ProblemTypes.IdempotencyKeyInUse,
                        "A request with this Idempotency-Key is still being processed.", "Retry after a moment with the same key.",
                        new Dictionary<string, object?> { ["retryAfterSeconds"] = (int)Math.Ceiling(inProgress.RetryAfter.TotalSeconds) });
                default:
                    await Task.Delay(WaitPollInterval, cancellationToken);
                    break;
            }
        }
    }

    private async Task<Reply> ExecuteAsync(IdempotencyClaim claim, Func<Task<Reply>> handler, CancellationToken cancellationToken)
    {
        Reply reply;
        try
        {
            reply = await handler();
        }
        catch
        {
            // Nothing recorded: the client's retry with the same key runs again (handlers are idempotent by id).
            await ReleaseAfterFailureAsync(claim);
            throw;
        }

        if (reply.IsServerError || reply.StatusCode == StatusCodes.Status429TooManyRequests)
        {
            // Not an answer to keep: "retry later" must not be replayed to the retry.
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

using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Payments.Api.Idempotency;
using Payments.Api.Problems;
using Payments.Domain;
using Payments.Etcd;

namespace Payments.Api.FunctionalTests;

/// <summary>A duplicate that waited for the request holding its key asks the caller once more before it answers (a
/// review of the probe's finding that a status wait answered with a revoked key: this wait is the same, up to 10 s).
/// The real executor of the fixture's API, on real etcd.</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class IdempotentWaitTests(ApiSystemFixture system)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private static readonly byte[] Body = "{}"u8.ToArray();
    private static readonly Reply Created = Reply.Json(StatusCodes.Status201Created, new { made = true });
    private static readonly Reply Refused = Reply.Problem(StatusCodes.Status401Unauthorized, ProblemTypes.Unauthorized, "Revoked meanwhile.");

    [Fact]
    public async Task ADuplicateThatWaited_AnswersWhatTheCheckAfterItsWaitSays_NotTheReplay()
    {
        var (executor, merchant, key) = Arrange();
        var release = new TaskCompletionSource<Reply>(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = await HoldingTheKeyAsync(executor, merchant, key, release.Task);
        var duplicate = await WaitingAsync(executor, merchant, key, _ => throw new InvalidOperationException("The duplicate must not run."));

        release.SetResult(Created);
        Assert.Equal(StatusCodes.Status201Created, (await first).StatusCode);
        Assert.Same(Refused, await duplicate.WaitAsync(Bound));

        // Asked without the check, the key's answer is the first request's.
        Assert.Equal(Created.Body, (await executor.RunAsync(merchant, key, "POST", "/t", Body, _ => throw new InvalidOperationException("ran"), CancellationToken.None)).Body);
    }

    /// <summary>When the request holding the key failed, the duplicate takes the key over; refused by the check, it
    /// must give the key back, or the client's next retry would get 409 until the claim timed out.</summary>
    [Fact]
    public async Task ADuplicateRefusedAfterTakingTheKeyOver_GivesItBack_AndTheNextRetryRuns()
    {
        var (executor, merchant, key) = Arrange();
        var release = new TaskCompletionSource<Reply>(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = await HoldingTheKeyAsync(executor, merchant, key, release.Task);
        var duplicate = await WaitingAsync(executor, merchant, key, _ => throw new InvalidOperationException("The duplicate must not run."));

        release.SetException(new InvalidOperationException("the first request failed"));
        await Assert.ThrowsAsync<InvalidOperationException>(() => first);
        Assert.Same(Refused, await duplicate.WaitAsync(Bound));

        var retry = await executor.RunAsync(merchant, key, "POST", "/t", Body, _ => Task.FromResult(Created), CancellationToken.None).WaitAsync(Bound);
        Assert.Equal(StatusCodes.Status201Created, retry.StatusCode);
    }

    private (IdempotentExecutor Executor, string Merchant, IdempotencyKey Key) Arrange()
    {
        Assert.True(IdempotencyKey.TryParse(Guid.NewGuid().ToString(), out var key, out _));
        return (system.ApiServices.GetRequiredService<IdempotentExecutor>(), $"idem-{Guid.NewGuid():N}"[..20], key);
    }

    /// <summary>A request that holds the key (its handler running) until <paramref name="answer"/> completes.</summary>
    private static async Task<Task<Reply>> HoldingTheKeyAsync(IdempotentExecutor executor, string merchant, IdempotencyKey key, Task<Reply> answer)
    {
        var running = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = executor.RunAsync(merchant, key, "POST", "/t", Body, async _ =>
        {
            running.SetResult();
            return await answer;
        }, CancellationToken.None);
        await running.Task.WaitAsync(Bound);
        return first;
    }

    /// <summary>A duplicate of the same key and body, counted among the replica's waiters before this returns.</summary>
    private async Task<Task<Reply>> WaitingAsync(IdempotentExecutor executor, string merchant, IdempotencyKey key, Func<IdempotencyClaim, Task<Reply>> handler)
    {
        var waits = system.ApiServices.GetRequiredService<InFlightWaits>();
        var duplicate = executor.RunAsync(merchant, key, "POST", "/t", Body, handler, CancellationToken.None, () => Task.FromResult<Reply?>(Refused));
        var waited = Stopwatch.StartNew();
        while (waits.Waiting < 1 && !duplicate.IsCompleted)
        {
            Assert.True(waited.Elapsed < Bound, "The duplicate never waited.");
            await Task.Delay(10);
        }

        Assert.False(duplicate.IsCompleted, "The duplicate answered without waiting.");
        return duplicate;
    }
}

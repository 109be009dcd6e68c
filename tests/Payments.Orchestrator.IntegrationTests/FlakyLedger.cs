using System.Collections.Concurrent;
using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core;

namespace Payments.Orchestrator.IntegrationTests;

/// <summary>The real ledger, with a fault injected on demand: the next calls for a chosen transfer id fail as if etcd
/// were unreachable, before reaching it (<see cref="FailNext"/>), or after the ledger applied them, as when the write
/// committed but is not yet replicated to the other region (<see cref="FailAfterApplying"/>). (Pausing etcd members
/// cannot target one step of one payment; this can, and everything behind it is the real ledger on the real cluster.)</summary>
public sealed class FlakyLedger(ILedger inner) : ILedger
{
    private readonly ConcurrentDictionary<string, int> failuresLeft = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int> attempts = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int> committedFailuresLeft = new(StringComparer.Ordinal);

    private readonly ConcurrentDictionary<string, TaskCompletionSource> gates = new(StringComparer.Ordinal);

    public void FailNext(TransferId id, int times) => failuresLeft[id.Value] = times;

    /// <summary>The next call carrying <paramref name="id"/> waits until the returned source completes: an activity that
    /// never answers (its work item lost with a worker that disconnected), until the test lets it go.</summary>
    public TaskCompletionSource HoldNext(TransferId id)
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        gates[id.Value] = gate;
        return gate;
    }

    private async Task MaybeHoldAsync(TransferId id)
    {
        if (gates.TryRemove(id.Value, out var gate))
        {
            await gate.Task;
        }
    }

    public void FailAfterApplying(TransferId id, int times) => committedFailuresLeft[id.Value] = times;

    public int Attempts(TransferId id) => attempts.GetValueOrDefault(id.Value);

    public Task<OpenAccountOutcome> OpenAccountAsync(AccountId id, Currency currency, long overdraftLimitMinor, CancellationToken cancellationToken) =>
        inner.OpenAccountAsync(id, currency, overdraftLimitMinor, cancellationToken);

    public Task<SetOverdraftOutcome> SetOverdraftLimitAsync(AccountId id, long overdraftLimitMinor, CancellationToken cancellationToken) =>
        inner.SetOverdraftLimitAsync(id, overdraftLimitMinor, cancellationToken);

    public Task<Account?> GetAccountAsync(AccountId id, CancellationToken cancellationToken) => inner.GetAccountAsync(id, cancellationToken);

    public Task<JournalEntry?> GetTransferAsync(TransferId id, CancellationToken cancellationToken) => inner.GetTransferAsync(id, cancellationToken);

    public async Task<TransferOutcome> TransferAsync(TransferRequest request, CancellationToken cancellationToken)
    {
        await MaybeHoldAsync(request.Id);
        MaybeFail(request.Id);
        var outcome = await inner.TransferAsync(request, cancellationToken);
        MaybeFailCommitted(request.Id);
        return outcome;
    }

    public async Task<BatchOutcome> ApplyBatchAsync(IReadOnlyList<TransferRequest> batch, CancellationToken cancellationToken)
    {
        foreach (var request in batch)
        {
            await MaybeHoldAsync(request.Id);
            MaybeFail(request.Id);
        }

        var outcome = await inner.ApplyBatchAsync(batch, cancellationToken);
        foreach (var request in batch)
        {
            MaybeFailCommitted(request.Id);
        }

        return outcome;
    }

    private void MaybeFailCommitted(TransferId id)
    {
        if (committedFailuresLeft.TryGetValue(id.Value, out var left) && left > 0 && committedFailuresLeft.TryUpdate(id.Value, left - 1, left))
        {
            throw new LedgerReplicationPendingException($"Injected: {id} committed, not yet replicated.");
        }
    }

    private void MaybeFail(TransferId id)
    {
        attempts.AddOrUpdate(id.Value, 1, (_, count) => count + 1);
        if (failuresLeft.TryGetValue(id.Value, out var left) && left > 0 && failuresLeft.TryUpdate(id.Value, left - 1, left))
        {
            throw new LedgerUnavailableException($"Injected fault for {id}.");
        }
    }
}

namespace Payments.Ledger.Core.Transfers;

/// <summary>This process's writes that change the same account take turns, first come first served: a write queues
/// behind the writes of this process already under way on any of its accounts, and is evaluated again once they are
/// answered (from the accounts they left in the cache) instead of sending a transaction that must lose its compare. A
/// lost compare costs a Raft entry, a read of every key through the leader and another write; the saga's holds and
/// settlements share the in-transit account's shards, and with eight payments in flight 0.4 of them per payment
/// conflicted (measured per call site).</summary>
/// <remarks>An optimisation only: correctness rests on etcd's compares, which still decide between processes (other
/// replicas) and for a write sent after <see cref="MaxTurns"/> turns. A turn is taken for all of a write's accounts at
/// once and only waits for turns taken before it, so the waits cannot form a cycle.</remarks>
internal sealed class KeyTurns
{
    /// <summary>Turns one write takes at most (a write whose accounts changed while it waited takes another); then it
    /// is sent without one, and its compares decide.</summary>
    public const int MaxTurns = 8;

    private readonly Dictionary<string, Task> last = new(StringComparer.Ordinal);
    private readonly Lock gate = new();

    /// <summary>A turn on <paramref name="keys"/>: write once <see cref="Turn.Ready"/> completes, and dispose it once
    /// the write is answered and the cache updated.</summary>
    public Turn Take(IReadOnlyCollection<string> keys)
    {
        ArgumentNullException.ThrowIfNull(keys);
        lock (gate)
        {
            var before = keys.Select(key => last.GetValueOrDefault(key)).OfType<Task>().Distinct().ToArray();
            var turn = new Turn(this, keys, before.Length == 0 ? Task.CompletedTask : Task.WhenAll(before));
            foreach (var key in keys)
            {
                last[key] = turn.Done;
            }

            return turn;
        }
    }

    internal sealed class Turn(KeyTurns owner, IReadOnlyCollection<string> keys, Task ready) : IDisposable
    {
        private readonly TaskCompletionSource done = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Completes when every write queued before this one on its accounts is answered (never faults).</summary>
        public Task Ready => ready;

        public Task Done => done.Task;

        /// <summary>Whether this turn was taken for every one of <paramref name="accounts"/>.</summary>
        public bool Covers(IEnumerable<string> accounts) => accounts.All(keys.Contains);

        public void Dispose()
        {
            lock (owner.gate)
            {
                foreach (var key in keys)
                {
                    if (owner.last.TryGetValue(key, out var task) && task == done.Task)
                    {
                        owner.last.Remove(key);
                    }
                }
            }

            done.TrySetResult();
        }
    }
}

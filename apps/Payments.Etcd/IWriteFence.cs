using Etcdserverpb;

namespace Payments.Etcd;

/// <summary>A condition a guarded write carries into its own etcd transaction, so the store itself rejects the write
/// once the writer's right has gone (a lock lost, a region demoted) — however late the write arrives.</summary>
public interface IWriteFence
{
    /// <summary>What the fence guards, for messages (e.g. "lock /x token 41", "region a epoch 7").</summary>
    string Description { get; }

    /// <summary>Adds the compare, and a read on failure so <see cref="WasFencedOff"/> can tell why it failed.</summary>
    void AddFence(TxnRequest request);

    /// <summary>True when a failed transaction built with <see cref="AddFence"/> failed because of this fence.</summary>
    bool WasFencedOff(TxnResponse response);
}

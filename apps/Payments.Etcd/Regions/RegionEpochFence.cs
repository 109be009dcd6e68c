using System.Globalization;
using Etcdserverpb;
using Google.Protobuf;

namespace Payments.Etcd.Regions;

/// <summary>ARCHITECTURE §2 invariants 5 and 6 in the store: a region writes only while its etcd holds the key
/// <c>{prefix}region/active-epoch</c> with the epoch the region won in the global active-region record. The key is
/// put by <see cref="RegionEpochMirror"/> on a lease that ends before the region's global lease does, and deleted on
/// demotion; a write compares it in its own transaction, so a region that lost its lease cannot commit even a write
/// already in flight.
/// <para><paramref name="expired"/>: the mirror's deadline has passed by the writer's clock (see
/// <see cref="RegionEpochWatcher"/>); the write fails its compare whatever the key holds, and counts as fenced off.</para></summary>
public sealed class RegionEpochFence(string prefix, long epoch, bool expired = false) : IWriteFence
{
    public string Key { get; } = KeyFor(prefix);

    public long Epoch { get; } = epoch > 0 ? epoch : throw new ArgumentOutOfRangeException(nameof(epoch), epoch, "Epochs start at 1.");

    public bool Expired { get; } = expired;

    public string Description => Expired ? $"region epoch {Epoch}, past its deadline" : $"region epoch {Epoch}";

    public static string KeyFor(string prefix) => EtcdBytes.AsPrefix(prefix) + "region/active-epoch";

    public static ByteString Encode(long epoch) => ByteString.CopyFromUtf8(epoch.ToString(CultureInfo.InvariantCulture));

    public void AddFence(TxnRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        // A missing key fails a VALUE compare: no mirror (demoted, lease expired, never promoted) means no write.
        request.Compare.Add(new Compare
        {
            Key = EtcdBytes.Key(Key),
            Target = Compare.Types.CompareTarget.Value,
            Result = Compare.Types.CompareResult.Equal,
            // Past the deadline: a value the key never holds (epochs are digits), so nothing of the write commits.
            Value = Expired ? ByteString.CopyFromUtf8("expired") : Encode(Epoch),
        });
        request.Failure.Add(EtcdBytes.Get(Key));
    }

    public bool WasFencedOff(TxnResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        if (response.Succeeded)
        {
            return false;
        }

        if (Expired)
        {
            return true;
        }

        var key = EtcdBytes.Key(Key);
        var current = response.Responses.Where(op => op.ResponseRange is not null).SelectMany(op => op.ResponseRange.Kvs)
            .FirstOrDefault(kv => kv.Key == key);
        return current is null || current.Value != Encode(Epoch);
    }
}

using System.Globalization;
using Etcdserverpb;
using Google.Protobuf;
using Payments.Etcd;

namespace Payments.Orchestrator.Client.Records;

/// <summary>The stuck-payment sweeper's keys in etcd, and how another app asks it for a full sweep (the failover
/// service, after its region took over). Kept here so that the asking app needs neither the saga nor an invocation.</summary>
public static class SweepRequests
{
    public static string LockKey(EtcdOptions layout) => Layout(layout).KeyPrefix + "locks/payment-sweeper";

    public static string CursorKey(EtcdOptions layout) => Layout(layout).KeyPrefix + "sweeper/cursor";

    public static string TakeoverKey(EtcdOptions layout) => Layout(layout).KeyPrefix + "sweeper/takeover";

    /// <summary>Compare-and-swap rounds a request makes at most (another request or the sweeper changing the flag between
    /// its read and its write).</summary>
    public const int MaxRequestRounds = 8;

    /// <summary>Asks the region's sweeper to resume every unfinished payment, without grace periods, until a full cycle
    /// has gone by (the flag holds the epoch that asked; a newer takeover replaces it, an older one never does: a request
    /// delayed past a newer one's — the failover service asks again for minutes — put its epoch back over the newer,
    /// whose cycle was then lost or cut short). Idempotent.</summary>
    public static async Task RequestTakeoverSweepAsync(EtcdConnection etcd, EtcdOptions layout, long epoch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(etcd);
        var key = TakeoverKey(layout);
        for (var round = 0; round < MaxRequestRounds; round++)
        {
            var current = (await EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(new RangeRequest { Key = EtcdBytes.Key(key) }, cancellationToken: token), cancellationToken))
                .Kvs.FirstOrDefault();
            if (current is not null && long.TryParse(current.Value.ToStringUtf8(), NumberStyles.None, CultureInfo.InvariantCulture, out var asked) && asked >= epoch)
            {
                return; // this takeover or a newer one is asked for already
            }

            var request = new TxnRequest();
            request.Compare.Add(new Compare
            {
                Key = EtcdBytes.Key(key), Target = Compare.Types.CompareTarget.Mod, Result = Compare.Types.CompareResult.Equal, ModRevision = current?.ModRevision ?? 0,
            });
            request.Success.Add(EtcdBytes.Put(key, ByteString.CopyFromUtf8(epoch.ToString(CultureInfo.InvariantCulture))));
            if ((await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken)).Succeeded)
            {
                return;
            }
        }

        throw new EtcdContentionException($"The takeover flag {key} kept changing for {MaxRequestRounds} rounds.");
    }

    private static EtcdOptions Layout(EtcdOptions layout) => layout ?? throw new ArgumentNullException(nameof(layout));
}

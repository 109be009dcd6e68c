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

    /// <summary>Asks the region's sweeper to resume every unfinished payment, without grace periods, until a full cycle
    /// has gone by (the flag holds the epoch that asked; a newer takeover replaces it). Idempotent.</summary>
    public static async Task RequestTakeoverSweepAsync(EtcdConnection etcd, EtcdOptions layout, long epoch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(etcd);
        var request = new TxnRequest();
        request.Success.Add(EtcdBytes.Put(TakeoverKey(layout), ByteString.CopyFromUtf8(epoch.ToString(CultureInfo.InvariantCulture))));
        await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
    }

    private static EtcdOptions Layout(EtcdOptions layout) => layout ?? throw new ArgumentNullException(nameof(layout));
}

using System.Globalization;
using Etcdserverpb;
using Google.Protobuf;
using Payments.Domain;
using Payments.Etcd;

namespace Payments.Api.Limits;

/// <summary>How much each merchant has deposited per currency per UTC day, against
/// <see cref="MoneyLimit.MaxDepositVolumePerDayMinor"/>. Why: deposits are the only way money enters a currency, and
/// its external funding account can take about 4.6·10^18 minor units over its whole life (docs/api.md, "Money
/// limits"); a per-deposit maximum alone lets one merchant's keys exhaust that for every merchant in days. With a daily
/// volume per merchant the bound is merchant-days, and merchants are made by the operator.</summary>
/// <remarks>Layout under the idempotency family (leased, and not shipped to the other region: after a failover the day
/// starts over there): <c>~deposit-volume/{merchant}/{CUR}/{yyyyMMdd}</c> the day's total, and
/// <c>…/{yyyyMMdd}/{depositId}</c> a marker per counted deposit, so a retry of the same deposit (its id derives from the
/// Idempotency-Key) is counted once. Both share one lease of <see cref="Retention"/>, granted with the day's first
/// deposit: storage is bounded by two days of deposits. Each reservation is one compare-and-swap.</remarks>
public sealed class DepositVolume(EtcdConnection etcd, string familyPrefix, TimeProvider time)
{
    /// <summary>How long a day's counter and markers are kept (the day, and a day's margin for clock skew).</summary>
    public static readonly TimeSpan Retention = TimeSpan.FromHours(49);

    /// <summary>Compare-and-swap rounds at most. A replica takes its own deposits on one counter in turn (its gate
    /// below), so rounds are lost only to another replica's deposit at the same instant.</summary>
    private const int MaxCasAttempts = 12;

    /// <summary>How long a deposit waits for its turn at the gate; the request's own timeout applies too.</summary>
    private static readonly TimeSpan GateTimeout = TimeSpan.FromSeconds(10);

    private readonly string root = familyPrefix + "deposit-volume/";
    /// <summary>A gate per counter (merchant, currency, day), only while deposits use it.</summary>
    private readonly KeyedGates gates = new();

    /// <summary>Counts the deposit toward today's volume unless that would pass <paramref name="maxPerDayMinor"/>;
    /// true when counted (or counted before, by a retry of the same deposit), false when over the limit.</summary>
    /// <remarks>A merchant's concurrent deposits in one currency all change one counter: raced freely, ten at once lost
    /// eight rounds in a row and answered 503. This replica's deposits on a counter now take turns.</remarks>
    public async Task<bool> TryReserveAsync(
        string merchantId, string depositId, Money amount, long maxPerDayMinor, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(amount);
        var counterKey = CounterKey(merchantId, amount);
        using var turn = await TurnAsync(counterKey, merchantId, cancellationToken);
        return await ReserveAsync(counterKey, $"{counterKey}/{depositId}", merchantId, amount, maxPerDayMinor, cancellationToken);
    }

    /// <summary>Takes back a counted deposit the ledger then refused (nothing moved): its amount no longer counts toward
    /// today's volume. A deposit refused without that kept the merchant's daily capacity shrunk by money that never
    /// came in. Nothing to do when it was not counted today (e.g. past midnight).</summary>
    public async Task ReleaseAsync(string merchantId, string depositId, Money amount, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(amount);
        var counterKey = CounterKey(merchantId, amount);
        var markerKey = $"{counterKey}/{depositId}";
        using var turn = await TurnAsync(counterKey, merchantId, cancellationToken);
        for (var attempt = 1; attempt <= MaxCasAttempts; attempt++)
        {
            var read = new TxnRequest();
            read.Success.Add(EtcdBytes.Get(counterKey));
            read.Success.Add(EtcdBytes.Get(markerKey));
            var current = await TxnAsync(read, cancellationToken);
            var (counter, marker) = (current.Responses[0].ResponseRange.Kvs.FirstOrDefault(), current.Responses[1].ResponseRange.Kvs.FirstOrDefault());
            if (counter is null || marker is null)
            {
                return;
            }

            var total = long.Parse(counter.Value.ToStringUtf8(), CultureInfo.InvariantCulture);
            var write = new TxnRequest();
            write.Compare.Add(EtcdBytes.ModRevisionIs(counterKey, counter.ModRevision));
            write.Compare.Add(EtcdBytes.ModRevisionIs(markerKey, marker.ModRevision));
            write.Success.Add(EtcdBytes.Put(counterKey, ByteString.CopyFromUtf8(Math.Max(0, total - amount.AmountMinor).ToString(CultureInfo.InvariantCulture)), counter.Lease));
            write.Success.Add(EtcdBytes.Delete(markerKey));
            if ((await TxnAsync(write, cancellationToken)).Succeeded)
            {
                return;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.Next(1, 5 * attempt)), TimeProvider.System, cancellationToken);
        }

        throw new EtcdContentionException($"The deposit volume of {merchantId} kept changing for {MaxCasAttempts} attempts.");
    }

    /// <summary>Today's counter of the merchant's deposits in the amount's currency.</summary>
    private string CounterKey(string merchantId, Money amount) =>
        $"{root}{merchantId}/{amount.Currency.Code}/{time.GetUtcNow().ToString("yyyyMMdd", CultureInfo.InvariantCulture)}";

    /// <summary>This replica's turn on a counter (its own gate, held until disposed), within <see cref="GateTimeout"/>.</summary>
    private Task<IDisposable> TurnAsync(string counterKey, string merchantId, CancellationToken cancellationToken) =>
        gates.TurnAsync(counterKey, GateTimeout, $"The deposit volume of {merchantId}", cancellationToken);

    private async Task<bool> ReserveAsync(
        string counterKey, string markerKey, string merchantId, Money amount, long maxPerDayMinor, CancellationToken cancellationToken)
    {
        long? granted = null; // granted once for the day's first deposit, reused by later rounds (a lease lives 49 h)
        try
        {
            for (var attempt = 1; attempt <= MaxCasAttempts; attempt++)
            {
                var read = new TxnRequest();
                read.Success.Add(EtcdBytes.Get(counterKey));
                read.Success.Add(EtcdBytes.Get(markerKey));
                var current = await TxnAsync(read, cancellationToken);
                if (current.Responses[1].ResponseRange.Kvs.Count > 0)
                {
                    return true; // this deposit was counted already
                }

                var counter = current.Responses[0].ResponseRange.Kvs.FirstOrDefault();
                var total = counter is null ? 0 : long.Parse(counter.Value.ToStringUtf8(), CultureInfo.InvariantCulture);
                if (total > maxPerDayMinor - amount.AmountMinor)
                {
                    return false;
                }

                var lease = counter?.Lease is > 0 ? counter.Lease : granted ??= await GrantAsync(cancellationToken);
                var write = new TxnRequest();
                write.Compare.Add(EtcdBytes.ModRevisionIs(counterKey, counter?.ModRevision ?? 0));
                write.Compare.Add(EtcdBytes.CreateRevisionIs(markerKey, 0));
                write.Success.Add(EtcdBytes.Put(counterKey, ByteString.CopyFromUtf8((total + amount.AmountMinor).ToString(CultureInfo.InvariantCulture)), lease));
                write.Success.Add(EtcdBytes.Put(markerKey, ByteString.Empty, lease));
                if ((await TxnAsync(write, cancellationToken)).Succeeded)
                {
                    granted = lease == granted ? null : granted; // in use: kept
                    return true;
                }

                // Another replica's deposit got there first: spread the next round (bounded, jittered). Real time: a
                // live request's pause, not the day's clock.
                await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.Next(1, 5 * attempt)), TimeProvider.System, cancellationToken);
            }

            throw new EtcdContentionException($"The deposit volume of {merchantId} kept changing for {MaxCasAttempts} attempts.");
        }
        catch (Exception) when (granted is not null)
        {
            // A write whose outcome is unknown (a timeout, a cancelled request) may have committed with this lease:
            // revoking it would delete the day's counter. It expires by itself after Retention.
            granted = null;
            throw;
        }
        finally
        {
            if (granted is { } unused)
            {
                await RevokeAsync(unused); // another deposit created the day's counter with its own lease
            }
        }
    }

    private async Task RevokeAsync(long lease)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await EtcdConnection.CallAsync(token => etcd.Leases.LeaseRevokeAsync(new LeaseRevokeRequest { ID = lease }, cancellationToken: token), timeout.Token);
        }
        catch (Exception exception) when (exception is Grpc.Core.RpcException or OperationCanceledException)
        {
            // Nothing is attached to it: it expires by itself after Retention.
        }
    }

    private async Task<long> GrantAsync(CancellationToken cancellationToken) =>
        (await EtcdConnection.CallAsync(token => etcd.Leases.LeaseGrantAsync(
            new LeaseGrantRequest { TTL = (long)Retention.TotalSeconds }, cancellationToken: token), cancellationToken)).ID;

    private Task<TxnResponse> TxnAsync(TxnRequest request, CancellationToken cancellationToken) =>
        EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
}

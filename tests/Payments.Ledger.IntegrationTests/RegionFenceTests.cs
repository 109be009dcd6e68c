using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Payments.Domain;
using Payments.Etcd;
using Payments.Etcd.Regions;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core;
using Payments.Ledger.IntegrationTests.Infrastructure;
using Payments.Testing;

namespace Payments.Ledger.IntegrationTests;

/// <summary>ARCHITECTURE §2 invariants 5 and 6 in the store: a region's ledger writes only while its etcd mirrors the
/// epoch the region holds; every refused write leaves the ledger exactly as it was.</summary>
[Collection(EtcdCollection.Name)]
public sealed class RegionFenceTests(EtcdClusterFixture etcd)
{
    private static readonly TimeSpan Hold = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan ExpiryBound = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task RegionHoldingItsEpoch_Writes()
    {
        var (ledger, mirror, _) = await RegionAsync(epoch: 3, mirrored: 3);
        var (debtor, creditor) = await OpenFundedAsync(ledger);

        var outcome = await ledger.TransferAsync(Transfer(debtor, creditor, 250), CancellationToken.None);

        Assert.IsType<TransferOutcome.Applied>(outcome);
        Assert.Equal(3, await mirror.ReadAsync(CancellationToken.None));
    }

    /// <summary>The API's acceptance of a payment (its record, with the Idempotency-Key's answer beside it) carries the
    /// region's fence too: the API's view of the epoch is polled, and a region demoted within that half second wrote
    /// records — and answered 202 — that the region taking over never received.</summary>
    [Fact]
    public async Task APaymentIsNotAccepted_ByARegionDemotedSinceItsLastLook_AndNothingIsWritten()
    {
        var prefix = EtcdClusterFixture.NewPrefix();
        var mirror = new RegionEpochMirror(etcd.Connection, prefix);
        Assert.True(await mirror.HoldAsync(2, Hold, CancellationToken.None));
        var watcher = new RegionEpochWatcher(etcd.Connection, prefix, TimeProvider.System);
        await watcher.RefreshAsync(CancellationToken.None);
        Assert.True(watcher.IsWritable);
        var records = new Payments.Orchestrator.Client.Records.PaymentRecordStore(etcd.Connection, prefix + "payments/") { RegionFence = watcher.CurrentFence };
        var accepted = Payments.Orchestrator.Client.Records.PaymentRecord.Accepted(
            new Payments.Orchestrator.Client.Models.PaymentOrder("pay_fenced_1", "merchant", "debtor", "creditor", 100, "EUR", null), DateTimeOffset.UtcNow);
        await records.CreateAsync(accepted, CancellationToken.None); // while the region holds its epoch

        await mirror.ReleaseAsync(CancellationToken.None); // demoted; the watcher has not looked again
        var late = accepted with { Order = accepted.Order with { PaymentId = "pay_fenced_2" } };
        await Assert.ThrowsAsync<RegionNotWritableException>(() => records.CreateAsync(late, CancellationToken.None));
        Assert.NotNull(await records.GetAsync("pay_fenced_1", CancellationToken.None));
        Assert.Null(await records.GetAsync("pay_fenced_2", CancellationToken.None));

        // Nor does a demoted region's saga record an outcome (and its webhook event): the region that took over decides.
        await Assert.ThrowsAsync<RegionNotWritableException>(() => records.RecordOutcomeAsync(
            "pay_fenced_1", Payments.Orchestrator.Client.Models.PaymentOutcome.Completed(), DateTimeOffset.UtcNow, CancellationToken.None));
        Assert.Equal(PaymentStatus.Pending, (await records.GetAsync("pay_fenced_1", CancellationToken.None))!.Value.Record.Status);
    }

    /// <summary>A mirror key that does not read (a hand edit, a newer version's format) leaves the region not writable,
    /// and the watcher polling: thrown out of its loop, it stopped the host of every regional app at once.</summary>
    [Fact]
    public async Task AMirrorThatDoesNotRead_LeavesTheRegionNotWritable_UntilItReadsAgain()
    {
        var prefix = EtcdClusterFixture.NewPrefix();
        var mirror = new RegionEpochMirror(etcd.Connection, prefix);
        Assert.True(await mirror.HoldAsync(4, Hold, CancellationToken.None));
        var watcher = new RegionEpochWatcher(etcd.Connection, prefix, TimeProvider.System);
        await watcher.RefreshAsync(CancellationToken.None);
        Assert.True(watcher.IsWritable);

        await PutAsync(mirror.LastEpochKey, "not-an-epoch");
        await watcher.RefreshAsync(CancellationToken.None);
        Assert.False(watcher.IsWritable);
        Assert.Null(watcher.Epoch);

        await PutAsync(mirror.LastEpochKey, "4");
        await watcher.RefreshAsync(CancellationToken.None);
        Assert.Equal(4, watcher.Epoch);
    }

    private Task PutAsync(string key, string value) => EtcdConnection.CallAsync(
        token => etcd.Connection.Kv.PutAsync(new Etcdserverpb.PutRequest { Key = EtcdBytes.Key(key), Value = Google.Protobuf.ByteString.CopyFromUtf8(value) }, cancellationToken: token),
        CancellationToken.None);

    [Fact]
    public async Task RegionNeverPromoted_CannotOpenAnAccount_AndNothingIsWritten()
    {
        var prefix = EtcdClusterFixture.NewPrefix();
        var ledger = FencedLedger(prefix, epoch: 1);

        await Assert.ThrowsAsync<RegionNotWritableException>(() =>
            ledger.OpenAccountAsync(AccountId.Parse("never"), Currency.Eur, 0, CancellationToken.None));

        Assert.Null(await etcd.NewLedger(prefix: prefix + "ledger/").GetAccountAsync(AccountId.Parse("never"), CancellationToken.None));
    }

    [Fact]
    public async Task DemotedRegion_CannotTransfer_AndBalancesAreUnchanged()
    {
        var (ledger, mirror, prefix) = await RegionAsync(epoch: 5, mirrored: 5);
        var (debtor, creditor) = await OpenFundedAsync(ledger);

        await mirror.ReleaseAsync(CancellationToken.None); // demotion
        await Assert.ThrowsAsync<RegionNotWritableException>(() => ledger.TransferAsync(Transfer(debtor, creditor, 100), CancellationToken.None));
        await Assert.ThrowsAsync<RegionNotWritableException>(() => ledger.CloseAccountAsync(creditor, CancellationToken.None));

        var unfenced = etcd.NewLedger(prefix: prefix + "ledger/");
        Assert.Equal(1_000, (await unfenced.GetAccountAsync(debtor, CancellationToken.None))!.BalanceMinor);
        Assert.Equal(0, (await unfenced.GetAccountAsync(creditor, CancellationToken.None))!.BalanceMinor);
    }

    [Fact]
    public async Task WriterWithAStaleEpoch_IsRejected_AfterTheMirrorMovedOn()
    {
        var (stale, mirror, prefix) = await RegionAsync(epoch: 7, mirrored: 7);
        var (debtor, creditor) = await OpenFundedAsync(stale);

        // Fail-back: the region won the record again with a higher epoch. A writer still on epoch 7 (a process that
        // slept through it) must not commit, whatever it believes.
        Assert.True(await mirror.HoldAsync(8, Hold, CancellationToken.None));
        await Assert.ThrowsAsync<RegionNotWritableException>(() => stale.TransferAsync(Transfer(debtor, creditor, 100), CancellationToken.None));
        var current = FencedLedger(prefix, epoch: 8);
        Assert.IsType<TransferOutcome.Applied>(await current.TransferAsync(Transfer(debtor, creditor, 100), CancellationToken.None));
        Assert.False(await mirror.HoldAsync(7, Hold, CancellationToken.None)); // an epoch never goes backwards
        Assert.Equal(8, await mirror.ReadAsync(CancellationToken.None));
    }

    [Fact]
    public async Task MirrorWhoseFailoverServiceStoppedRenewing_ExpiresByItself_AndWritesStop()
    {
        var (ledger, mirror, _) = await RegionAsync(epoch: 2, mirrored: 2);
        var (debtor, creditor) = await OpenFundedAsync(ledger);
        Assert.True(await mirror.HoldAsync(2, RegionEpochMirror.MinHold + TimeSpan.FromSeconds(1), CancellationToken.None));

        // Nobody renews: the etcd lease ends, the key goes, and the store refuses the region's writes.
        var waited = Stopwatch.StartNew();
        while (await mirror.ReadAsync(CancellationToken.None) is not null)
        {
            Assert.True(waited.Elapsed < ExpiryBound, $"The mirror outlived its lease by more than {ExpiryBound}.");
            await Task.Delay(TimeSpan.FromMilliseconds(100));
        }

        await Assert.ThrowsAsync<RegionNotWritableException>(() => ledger.TransferAsync(Transfer(debtor, creditor, 100), CancellationToken.None));
    }

    /// <summary>The mirror's etcd lease is not a deadline: etcd gives every lease its whole TTL again when it elects a
    /// new leader, so the key can outlive the region's deadline by up to a hold, while the standby takes over. The
    /// deadline written beside it is what the region's apps obey. Here the clocks pass the deadline while the key's
    /// (real-time) lease still runs, as after such a reset: before this, the region kept writing.</summary>
    [Fact]
    public async Task PastTheMirrorsDeadline_TheRegionDoesNotWrite_ThoughItsKeyLivesOn()
    {
        var prefix = EtcdClusterFixture.NewPrefix();
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        var mirror = new RegionEpochMirror(etcd.Connection, prefix, clock);
        Assert.True(await mirror.HoldAsync(4, Hold, CancellationToken.None));
        var watcher = new RegionEpochWatcher(etcd.Connection, prefix, clock);
        await watcher.RefreshAsync(CancellationToken.None);
        Assert.True(watcher.IsWritable);
        var ledger = new EtcdLedger(etcd.Connection, prefix + "ledger/", TimeProvider.System, NullLogger<EtcdLedger>.Instance, watcher.CurrentFence);
        var (debtor, creditor) = await OpenFundedAsync(ledger);

        clock.Advance(Hold);
        await watcher.RefreshAsync(CancellationToken.None);
        Assert.Equal(4, await mirror.ReadAsync(CancellationToken.None)); // the key is still there
        Assert.False(watcher.IsWritable);
        await Assert.ThrowsAsync<RegionNotWritableException>(() => ledger.TransferAsync(Transfer(debtor, creditor, 100), CancellationToken.None));

        var unfenced = etcd.NewLedger(prefix: prefix + "ledger/");
        Assert.Equal(1_000, (await unfenced.GetAccountAsync(debtor, CancellationToken.None))!.BalanceMinor);

        // A renewal moves the deadline on, and the region writes again.
        Assert.True(await mirror.HoldAsync(4, Hold, CancellationToken.None));
        await watcher.RefreshAsync(CancellationToken.None);
        Assert.True(watcher.IsWritable);
        Assert.IsType<TransferOutcome.Applied>(await ledger.TransferAsync(Transfer(debtor, creditor, 100), CancellationToken.None));
    }

    private async Task<(EtcdLedger Ledger, RegionEpochMirror Mirror, string Prefix)> RegionAsync(long epoch, long mirrored)
    {
        var prefix = EtcdClusterFixture.NewPrefix();
        var mirror = new RegionEpochMirror(etcd.Connection, prefix);
        Assert.True(await mirror.HoldAsync(mirrored, Hold, CancellationToken.None));
        return (FencedLedger(prefix, epoch), mirror, prefix);
    }

    private EtcdLedger FencedLedger(string prefix, long epoch) =>
        new(etcd.Connection, prefix + "ledger/", TimeProvider.System, NullLogger<EtcdLedger>.Instance, () => new RegionEpochFence(prefix, epoch));

    private static async Task<(AccountId Debtor, AccountId Creditor)> OpenFundedAsync(EtcdLedger ledger)
    {
        var debtor = AccountId.Parse($"d-{Guid.NewGuid():N}");
        var creditor = AccountId.Parse($"c-{Guid.NewGuid():N}");
        Assert.IsType<OpenAccountOutcome.Opened>(await ledger.OpenAccountAsync(debtor, Currency.Eur, 0, CancellationToken.None));
        Assert.IsType<OpenAccountOutcome.Opened>(await ledger.OpenAccountAsync(creditor, Currency.Eur, 0, CancellationToken.None));
        var funding = new TransferRequest.Single(TransferId.Parse($"fund-{debtor}"), AccountId.ExternalFunding(Currency.Eur), debtor, new Money(1_000, Currency.Eur));
        Assert.IsType<TransferOutcome.Applied>(await ledger.TransferAsync(funding, CancellationToken.None));
        return (debtor, creditor);
    }

    private static TransferRequest.Single Transfer(AccountId debtor, AccountId creditor, long amountMinor) =>
        new(TransferId.Parse($"t-{Guid.NewGuid():N}"), debtor, creditor, new Money(amountMinor, Currency.Eur));
}

using Microsoft.Azure.Cosmos;
using Microsoft.Extensions.Logging;
using Payments.Etcd;
using Payments.Etcd.Regions;

namespace Payments.Failover.Core;

public enum RegionRole
{
    Standby,
    Active,
}

/// <summary>One region's side of the active-region lease. Each <see cref="TickAsync"/> (every
/// <see cref="RegionLeaseOptions.RenewInterval"/>) reads the record: the active region renews it and re-mirrors its
/// epoch into its etcd; a standby promotes itself (epoch + 1) once the lease has expired plus the promotion margin; an
/// active region that cannot renew — Cosmos unreachable, or the record moved on — stops writing at its own deadline,
/// before any standby may promote. Every change of the record is an ETag compare-and-swap.</summary>
public sealed partial class RegionLeaseManager(
    RegionLeaseOptions options, ActiveRegionStore store, RegionEpochMirror mirror, TimeProvider time, ILogger logger)
{
    public string Region => options.Name;

    public RegionRole Role { get; private set; } = RegionRole.Standby;

    /// <summary>The epoch this region holds (while active) or last held.</summary>
    public long Epoch { get; private set; }

    /// <summary>While active: the instant (this region's clock) after which it must not write.</summary>
    public DateTimeOffset WritableUntil { get; private set; } = DateTimeOffset.MinValue;

    /// <summary>The record as last read (null before the first successful read).</summary>
    public ActiveRegionRecord? LastSeen { get; private set; }

    public DateTimeOffset? LastSeenAt { get; private set; }

    /// <summary>Raised when this region starts writing with an epoch (promotion, hand-over, or its failover service
    /// starting while it holds the record), after any catch-up: reconciliation starts here.</summary>
    public Func<long, Task>? Promoted { get; set; }

    /// <summary>Run after this region won the record and before it takes any write: applies what the previous active
    /// region shipped (its argument). Until it succeeds the region keeps renewing its lease but does not write.</summary>
    public Func<string, CancellationToken, Task>? CatchUp { get; set; }

    /// <summary>Run by a planned switchover after this region stopped writing and before the record moves: waits until
    /// everything this region wrote is shipped. If it throws, nothing is handed over and the next tick resumes writing.</summary>
    public Func<CancellationToken, Task>? BeforeHandOver { get; set; }

    /// <summary>The previous active region, while the catch-up after a promotion has not yet succeeded.</summary>
    public string? CatchingUpFrom { get; private set; }

    /// <summary>The other region of the deployment: a process that finds its region holding the record without having
    /// seen it change hands (it just started) applies what is left of this region's journal first, since whether the
    /// process before it finished the catch-up is known nowhere. When it did, that costs a read of the peer's head.</summary>
    public string? PeerRegion { get; init; }

    public bool IsWritable => Role == RegionRole.Active && time.GetUtcNow() < WritableUntil;

    /// <summary>When this process last held the epoch in its region's etcd, or first found its region holding the
    /// record (null while another region holds it): how long the region has been unable to write.</summary>
    private DateTimeOffset? heldAt;

    /// <summary>Whether this process's last attempt to hold the epoch failed in etcd (refused or unanswered): an etcd
    /// out of space (NOSPACE) still answers reads but takes no hold, and no write of the region's either.</summary>
    private bool etcdRefusedHold;

    /// <summary>The peer whose journal a process that started while its region held the record applies before it
    /// writes, unless the region already held the record's epoch: a region that held it had caught up before, and
    /// draining the peer again — every restart of a failover pod — applied what the peer shipped since, such as the
    /// unshipped tail a lost region ships when it returns, over this region's newer records.</summary>
    private (string Peer, long Epoch)? catchUpUnlessHeld;

    /// <summary>Serialises ticks and hand-overs (the loop and an operator's request may overlap).</summary>
    private readonly SemaphoreSlim turn = new(1, 1);

    public async Task TickAsync(CancellationToken cancellationToken)
    {
        await turn.WaitAsync(cancellationToken);
        try
        {
            await TickCoreAsync(cancellationToken);
        }
        finally
        {
            turn.Release();
        }
    }

    private async Task TickCoreAsync(CancellationToken cancellationToken)
    {
        ActiveRegionRecord record;
        string etag;
        try
        {
            if (options.Role == RegionRole.Active && await BootstrapEpochAsync(cancellationToken) is { } first)
            {
                await store.BootstrapAsync(options.Name, time.GetUtcNow() + options.LeaseDuration, cancellationToken, first);
            }

            (record, etag) = await store.ReadAsync(cancellationToken);
            recordMissingSince = null;
        }
        catch (CosmosException exception) when (exception.StatusCode == System.Net.HttpStatusCode.NotFound && exception.SubStatusCode == 0)
        {
            RecordMissing();
            await DemoteIfDueAsync(cancellationToken);
            return;
        }
        catch (Exception exception) when (IsUnreachable(exception, cancellationToken))
        {
            logger.LogWarning("Region {Region}: the active-region record is unreachable ({Error})", options.Name, exception.Message);
            await DemoteIfDueAsync(cancellationToken);
            return;
        }

        await NoteRegressionAsync(record, cancellationToken);
        var (previous, previousEpoch) = (LastSeen?.ActiveRegion, LastSeen?.Epoch);
        LastSeen = record;
        LastSeenAt = time.GetUtcNow();
        if (record.ActiveRegion == options.Name)
        {
            if (Role != RegionRole.Active && previous is { } handedBy && handedBy != options.Name)
            {
                CatchingUpFrom ??= handedBy; // handed over by a planned switchover: apply its journal before writing
            }
            else if ((Role != RegionRole.Active || Epoch != record.Epoch) && (previous is null || previousEpoch != record.Epoch) && PeerRegion is { } peer)
            {
                // This process just started, its region holding the record (or it missed the record's moves, Cosmos DB
                // out of its reach): a failover pod restarted (or replaced) in the middle of the catch-up after a
                // promotion, which lives in memory only, mirrored the epoch at once and the region wrote without the
                // peer's tail. Decided at the hold (HoldAsync), by whether the region ever held this epoch: once it
                // did, it had caught up.
                catchUpUnlessHeld = (peer, record.Epoch);
            }

            // A process that has not held yet gets no grace of its own: each restart during an etcd outage gave the
            // region another YieldAfterEtcdOutage.
            heldAt ??= previous is null ? time.GetUtcNow() - options.YieldAfterEtcdOutage : time.GetUtcNow();
            var (underway, etcdAnswered) = await HandOverUnderwayAsync(record, etag, cancellationToken);
            if (underway || await YieldsForEtcdAsync(etcdAnswered, cancellationToken))
            {
                return;
            }

            await RenewAsync(record, etag, cancellationToken);
            return;
        }

        (heldAt, catchUpUnlessHeld, etcdRefusedHold) = (null, null, false);
        await TickAsStandbyAsync(record, etag, cancellationToken);
    }

    /// <summary>A tick while another region holds the record: demote if this region still wrote, remove a mirror
    /// that outlived its epoch, promote once the lease ended plus the margin — if this region's etcd answers.</summary>
    private async Task TickAsStandbyAsync(ActiveRegionRecord record, string etag, CancellationToken cancellationToken)
    {
        if (Role == RegionRole.Active)
        {
            logger.LogWarning("Region {Region}: {Other} holds epoch {Epoch}; demoting", options.Name, record.ActiveRegion, record.Epoch);
            await DemoteAsync(record.Epoch, cancellationToken);
            return;
        }

        var mirrored = await MirrorOutlivedItsRegionAsync(cancellationToken);
        if (mirrored is null)
        {
            // Its etcd does not answer: a region that took the record now could not write, and would keep the
            // lease from the region that can.
            return;
        }

        if (mirrored.Value)
        {
            // A mirror this process never held: left by an earlier instance, and kept alive past its deadline because
            // etcd restarts a lease's TTL when it restarts or changes leader (found by the DR drill: region A's etcd
            // came back with A's epoch still mirrored). Another region holds the record, so it goes now.
            logger.LogWarning("Region {Region}: {Other} holds epoch {Epoch} but this region's etcd still mirrored an epoch; removing it",
                options.Name, record.ActiveRegion, record.Epoch);
            await DemoteAsync(record.Epoch, cancellationToken);
        }
        else if (time.GetUtcNow() > record.LeaseUntil + options.PromotionMargin)
        {
            await TryPromoteAsync(record, etag, cancellationToken);
        }
    }

    /// <summary>This process stops writing and removes the mirror: another region holds the record at
    /// <paramref name="recordEpoch"/> (or the mirror outlived the region's epoch), so any hold of the region's up to
    /// it goes (<see cref="RegionEpochMirror.ReleaseUpToAsync"/>: a higher one is another process's newer promotion);
    /// or, with null, this process missed its deadline or had its hold refused, so only its own hold goes
    /// (<see cref="RegionEpochMirror.ReleaseOwnAsync"/>: another process of the region may have renewed it).</summary>
    private async Task DemoteAsync(long? recordEpoch, CancellationToken cancellationToken)
    {
        Role = RegionRole.Standby;
        WritableUntil = DateTimeOffset.MinValue;
        try
        {
            await (recordEpoch is { } epoch ? mirror.ReleaseUpToAsync(epoch, cancellationToken) : mirror.ReleaseOwnAsync(cancellationToken));
        }
        catch (Exception exception) when (exception is Grpc.Core.RpcException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            // The mirror's lease ends by itself no later than the deadline this region already stopped at.
            logger.LogWarning("Region {Region}: could not delete the epoch mirror ({Error}); its lease ends it", options.Name, exception.Message);
        }
    }

    private async Task RenewAsync(ActiveRegionRecord record, string etag, CancellationToken cancellationToken)
    {
        var sentAt = time.GetUtcNow();
        var renewed = record with { LeaseUntilUnixMs = (sentAt + options.LeaseDuration).ToUnixTimeMilliseconds() };
        string? newEtag;
        try
        {
            newEtag = await store.TryReplaceAsync(renewed, etag, cancellationToken);
        }
        catch (Exception exception) when (IsUnreachable(exception, cancellationToken))
        {
            logger.LogWarning("Region {Region}: lease renewal failed ({Error})", options.Name, exception.Message);
            await DemoteIfDueAsync(cancellationToken);
            return;
        }

        if (newEtag is null)
        {
            await DemoteIfDueAsync(cancellationToken); // changed under us: the next tick reads who holds it
            return;
        }

        LastSeen = renewed;
        await HoldAsync(record.Epoch, sentAt, cancellationToken);
    }

    private async Task TryPromoteAsync(ActiveRegionRecord record, string etag, CancellationToken cancellationToken)
    {
        var sentAt = time.GetUtcNow();
        var promoted = new ActiveRegionRecord(record.Id, options.Name, record.Epoch + 1, (sentAt + options.LeaseDuration).ToUnixTimeMilliseconds());
        string? newEtag;
        try
        {
            newEtag = await store.TryReplaceAsync(promoted, etag, cancellationToken);
        }
        catch (Exception exception) when (IsUnreachable(exception, cancellationToken))
        {
            logger.LogWarning("Region {Region}: promotion failed ({Error})", options.Name, exception.Message);
            return;
        }

        if (newEtag is null)
        {
            return; // another region changed the record first
        }

        logger.LogWarning("Region {Region}: promoted with epoch {Epoch} ({Previous}'s lease ended at {LeaseUntil:O})",
            options.Name, promoted.Epoch, record.ActiveRegion, record.LeaseUntil);
        LastSeen = promoted;
        if (record.ActiveRegion != options.Name)
        {
            CatchingUpFrom = record.ActiveRegion; // after a switchover of its own that stopped midway, nothing to apply
        }

        await HoldAsync(promoted.Epoch, sentAt, cancellationToken);
    }

    /// <summary>After the record says this region holds <paramref name="epoch"/> from <paramref name="sentAt"/>:
    /// mirror it into etcd until this region's deadline, and only then count as active.</summary>
    private async Task<bool> HoldAsync(long epoch, DateTimeOffset sentAt, CancellationToken cancellationToken)
    {
        if (!await CaughtUpAsync(epoch, cancellationToken))
        {
            return false;
        }

        var writableUntil = sentAt + options.LeaseDuration - options.DemoteMargin;
        var hold = writableUntil - time.GetUtcNow();
        if (hold < RegionEpochMirror.MinHold)
        {
            logger.LogWarning("Region {Region}: the renewal took too long to leave a writable interval; not writing", options.Name);
            await DemoteIfDueAsync(cancellationToken);
            return false;
        }

        bool held;
        try
        {
            held = await mirror.HoldUntilAsync(epoch, writableUntil, time, cancellationToken); // never past it, however long this process paused
        }
        catch (Exception exception) when (exception is Grpc.Core.RpcException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            LogDropped(epoch);
            logger.LogWarning("Region {Region}: its etcd did not take the epoch mirror ({Error})", options.Name, exception.Message);
            etcdRefusedHold = true;
            await DemoteIfDueAsync(cancellationToken);
            return false;
        }

        etcdRefusedHold = false;
        LogDropped(epoch);

        if (!held)
        {
            await DemoteAsync(null, cancellationToken); // a higher epoch may be another process's of this region: not its mirror
            return false;
        }

        var tookOver = Role != RegionRole.Active || Epoch != epoch; // a paused process may find its region holding a newer epoch
        heldAt = time.GetUtcNow();
        Role = RegionRole.Active;
        Epoch = epoch;
        WritableUntil = writableUntil;
        if (tookOver && Promoted is { } promotedHandler)
        {
            await promotedHandler(epoch); // reconciliation starts (the handler must not block the tick)
        }

        return true;
    }

    /// <summary>Says what the hold's drop of a lost epoch's webhook work deleted, if anything (whether the hold then
    /// succeeded or not: the deletion stands).</summary>
    private void LogDropped(long epoch)
    {
        if (mirror.LastDropped > 0)
        {
            logger.LogWarning("Region {Region}: dropped {Count} webhook outbox markers and owed deliveries of its lost epoch before taking epoch {Epoch} "
                + "(another region served meanwhile and may have decided those payments otherwise); their events stay readable with GET /v1/events",
                options.Name, mirror.LastDropped, epoch);
        }
    }

    /// <summary>Whether this region's etcd still mirrors an epoch; null when it does not answer.</summary>
    private async Task<bool?> MirrorOutlivedItsRegionAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await mirror.ReadAsync(cancellationToken) is not null;
        }
        catch (Exception exception) when (exception is Grpc.Core.RpcException || (exception is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            logger.LogWarning("Region {Region}: its etcd does not answer ({Error}); not taking the record while it cannot write", options.Name, exception.Message);
            return null;
        }
    }

    private async Task DemoteIfDueAsync(CancellationToken cancellationToken)
    {
        if (Role == RegionRole.Active && time.GetUtcNow() >= WritableUntil)
        {
            logger.LogWarning("Region {Region}: lease not renewed by its deadline {Deadline:O}; demoting", options.Name, WritableUntil);
            await DemoteAsync(null, cancellationToken); // another process of the region may have renewed it
        }
    }

    private static bool IsUnreachable(Exception exception, CancellationToken cancellationToken) =>
        exception is CosmosException or HttpRequestException || (exception is OperationCanceledException && !cancellationToken.IsCancellationRequested);
}

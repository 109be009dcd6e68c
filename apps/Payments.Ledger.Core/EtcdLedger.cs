using Etcdserverpb;
using Microsoft.Extensions.Logging;
using Payments.Domain;
using Payments.Etcd;
using Payments.Etcd.Regions;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core.Retention;
using Payments.Ledger.Core.Rules;
using Payments.Ledger.Core.Storage;
using Payments.Ledger.Core.Transfers;

namespace Payments.Ledger.Core;

/// <summary>The double-entry ledger on etcd: account operations here, transfers in <see cref="TransferApplier"/>,
/// the business rules in <see cref="TransferRules"/>, etcd calls and their retries in <see cref="LedgerStore"/>.</summary>
/// <remarks>
/// Every mutation is one etcd transaction: it compares the mod revision of every key it writes with the revision it
/// read, and writes all of them at once (ARCHITECTURE §2.4). Reads go first to the nearest member (serializable,
/// maybe stale — the compare catches that) and, after a conflict, through the leader (linearizable). A transfer id's
/// record is created only if absent, in the same transaction as the balances it changes, so a retry after a timeout,
/// a crash or a lost response can never apply it twice.
/// </remarks>
public sealed class EtcdLedger : ILedger
{
    /// <summary>Most transfers in one linked batch (see <see cref="TransferApplier.MaxBatchTransfers"/>).</summary>
    public const int MaxBatchTransfers = TransferApplier.MaxBatchTransfers;

    /// <summary>etcd's default <c>--max-txn-ops</c>: the ledger's transactions stay within it, so it runs on any etcd (ours allow
    /// more, <see cref="Payments.Etcd.EtcdLimits.MaxTxnOps"/>, for Dapr's workflow state).</summary>
    public const int MaxTxnOps = LedgerStore.MaxTxnOps;

    /// <summary>Conflicts or unavailable members before an operation gives up (it is safe to retry it later with the same ids).</summary>
    public const int MaxAttempts = LedgerStore.MaxAttempts;

    public static readonly TimeSpan OperationTimeout = LedgerStore.OperationTimeout;

    private readonly LedgerStore store;
    private readonly TransferApplier transfers;
    private readonly GroupCommit groups;
    private readonly HoldBars bars;
    private readonly Func<IWriteFence?>? regionFence;

    /// <param name="prefix">The key prefix of this ledger's data, e.g. <c>/daprpayments/ledger/</c>.</param>
    /// <param name="regionFence">When set (a region of a two-region deployment), every mutation carries it into its
    /// own transaction: the region's epoch mirror must still hold its epoch, or nothing is written
    /// (<see cref="RegionNotWritableException"/>). Reads are not fenced. Asked once per write attempt: it follows the
    /// epoch the region holds (see <see cref="RegionEpochWatcher"/>).</param>
    /// <param name="retention">The replay window and archival settings (defaults: <see cref="JournalRetentionOptions"/>).</param>
    public EtcdLedger(
        EtcdConnection etcd, string prefix, TimeProvider time, ILogger<EtcdLedger> logger, Func<IWriteFence?>? regionFence = null,
        JournalRetentionOptions? retention = null)
    {
        ArgumentNullException.ThrowIfNull(etcd);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(logger);
        LedgerMetrics.Conflicts.Add(0); // the series exists before the first conflict: rate() reads 0, not nothing
        Retention = (retention ?? new JournalRetentionOptions()).Validate();
        store = new LedgerStore(etcd, new LedgerKeys(prefix));
        transfers = new TransferApplier(store, time, Retention, logger, regionFence);
        groups = new GroupCommit(transfers, time);
        bars = new HoldBars(store, time, Retention, regionFence);
        this.regionFence = regionFence;
        Time = time;
    }

    internal LedgerStore Store => store;

    internal LedgerKeys Keys => store.Keys;

    /// <summary>Where the journal's entries (the transfer records) are kept: for a watch of what it appends.</summary>
    public string JournalPrefix => Keys.TransfersPrefix;

    internal TimeProvider Time { get; }

    public JournalRetentionOptions Retention { get; }

    public async Task<OpenAccountOutcome> OpenAccountAsync(
        AccountId id, Currency currency, long overdraftLimitMinor, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(id);
        ArgumentNullException.ThrowIfNull(currency);
        if (id.IsSystem || overdraftLimitMinor < 0)
        {
            return new OpenAccountOutcome.Failed(new LedgerError(
                LedgerError.InvalidAmount, id.IsSystem ? "System accounts cannot be opened." : "The overdraft limit must not be negative."));
        }

        var key = Keys.Account(id);
        var record = new AccountRecord(id.Value, currency.Code, overdraftLimitMinor, Unlimited: false, Closed: false, 0, 0, 0);
        var request = new TxnRequest();
        request.Compare.Add(EtcdBytes.CreateRevisionIs(key, 0));
        request.Success.Add(EtcdBytes.Put(key, LedgerJson.Encode(record)));
        request.Success.Add(SettingsOf(record));
        request.Failure.Add(EtcdBytes.Get(key));
        var (response, region) = await store.FencedTxnAsync(request, regionFence, cancellationToken);
        if (response.Succeeded)
        {
            return new OpenAccountOutcome.Opened(ToAccount(record, version: 1), Created: true);
        }

        RegionFences.ThrowIfFencedOff(region, response);
        var kv = response.Responses[0].ResponseRange.Kvs[0];
        var existing = LedgerJson.DecodeAccount(kv.Value);
        return existing.Currency == record.Currency && existing.OverdraftLimitMinor == record.OverdraftLimitMinor
            ? new OpenAccountOutcome.Opened(ToAccount(existing, kv.Version), Created: false)
            : new OpenAccountOutcome.Failed(new LedgerError(
                LedgerError.AccountExists, $"Account {id} exists with currency {existing.Currency} and overdraft limit {existing.OverdraftLimitMinor}."));
    }

    /// <summary>Closes an account with no balance and no holds; a closed account takes part in no further transfer.</summary>
    public async Task<CloseAccountOutcome> CloseAccountAsync(AccountId id, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(id);
        for (var attempt = 1; attempt <= MaxAttempts; attempt++)
        {
            var key = Keys.Account(id);
            var current = await store.RetryingAsync(token => store.GetAsync(key, serializable: false, token), cancellationToken);
            if (!current.Exists || id.IsSystem)
            {
                return new CloseAccountOutcome.Failed(new LedgerError(LedgerError.AccountNotFound, $"No account {id}."));
            }

            var record = LedgerJson.DecodeAccount(current.Value!);
            if (record.Closed)
            {
                return new CloseAccountOutcome.Closed(ToAccount(record, current.Version));
            }

            if (record.Balances != Balances.Zero)
            {
                return new CloseAccountOutcome.Failed(new LedgerError(
                    LedgerError.AccountNotEmpty, $"Account {id} still has a balance of {record.BalanceMinor} or pending transfers."));
            }

            var closed = record with { Closed = true };
            var request = new TxnRequest();
            request.Compare.Add(EtcdBytes.ModRevisionIs(key, current.ModRevision));
            request.Success.Add(EtcdBytes.Put(key, LedgerJson.Encode(closed)));
            request.Success.Add(SettingsOf(closed));
            var (response, region) = await store.FencedTxnAsync(request, regionFence, cancellationToken);
            if (response.Succeeded)
            {
                return new CloseAccountOutcome.Closed(ToAccount(closed, current.Version + 1));
            }

            RegionFences.ThrowIfFencedOff(region, response);
        }

        throw new LedgerUnavailableException($"Closing {id} conflicted {MaxAttempts} times.");
    }

    /// <summary>Sets a customer account's overdraft limit: one compare-and-swap on the account's record, retried
    /// (bounded) when a transfer changed the record meanwhile. The same limit again is a success without a write.
    /// Refused, with nothing changed, below what the account already uses (available + limit would be negative):
    /// the no-overdraft invariant (ARCHITECTURE §2.3) holds for every limit the ledger has ever stored.
    /// <paramref name="maxOverdraftFor"/> (the ledger's route: its configured maximum per currency) refuses a limit
    /// above it on the very record the write compares: checked on a read before, an account opened between that read
    /// (none yet: no check) and this write took a limit of 2^63 − 1 (a probe, racing the open).</summary>
    public Task<SetOverdraftOutcome> SetOverdraftLimitAsync(AccountId id, long overdraftLimitMinor, CancellationToken cancellationToken) =>
        SetOverdraftLimitAsync(id, overdraftLimitMinor, maxOverdraftFor: null, cancellationToken);

    /// <summary>As <see cref="SetOverdraftLimitAsync(AccountId, long, CancellationToken)"/>, within <paramref name="maxOverdraftFor"/>.</summary>
    public async Task<SetOverdraftOutcome> SetOverdraftLimitAsync(
        AccountId id, long overdraftLimitMinor, Func<Currency, long>? maxOverdraftFor, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(id);
        if (overdraftLimitMinor < 0)
        {
            return new SetOverdraftOutcome.Failed(new LedgerError(LedgerError.InvalidAmount, "The overdraft limit must not be negative."));
        }

        for (var attempt = 1; attempt <= MaxAttempts; attempt++)
        {
            var key = Keys.Account(id);
            var current = await store.RetryingAsync(token => store.GetAsync(key, serializable: false, token), cancellationToken);
            if (!current.Exists || id.IsSystem)
            {
                return new SetOverdraftOutcome.Failed(new LedgerError(LedgerError.AccountNotFound, $"No account {id}."));
            }

            var record = LedgerJson.DecodeAccount(current.Value!);
            if (maxOverdraftFor?.Invoke(Currency.FromCode(record.Currency)) is { } max && overdraftLimitMinor > max)
            {
                return new SetOverdraftOutcome.Failed(new LedgerError(LedgerError.OverdraftAboveMaximum,
                    $"An overdraft limit of {overdraftLimitMinor} is above the most an account in {record.Currency} may have ({max})."));
            }

            if (OverdraftRefusal(record, overdraftLimitMinor) is { } refusal)
            {
                return refusal;
            }

            if (record.OverdraftLimitMinor == overdraftLimitMinor)
            {
                return new SetOverdraftOutcome.Set(ToAccount(record, current.Version), Changed: false);
            }

            var changed = record with { OverdraftLimitMinor = overdraftLimitMinor };
            var request = new TxnRequest();
            request.Compare.Add(EtcdBytes.ModRevisionIs(key, current.ModRevision));
            request.Success.Add(EtcdBytes.Put(key, LedgerJson.Encode(changed)));
            request.Success.Add(SettingsOf(changed));
            var (response, region) = await store.FencedTxnAsync(request, regionFence, cancellationToken);
            if (response.Succeeded)
            {
                return new SetOverdraftOutcome.Set(ToAccount(changed, current.Version + 1), Changed: true);
            }

            RegionFences.ThrowIfFencedOff(region, response);
        }

        throw new LedgerUnavailableException($"Setting the overdraft limit of {id} conflicted {MaxAttempts} times.");
    }

    private static SetOverdraftOutcome.Failed? OverdraftRefusal(AccountRecord record, long overdraftLimitMinor)
    {
        if (record.Closed)
        {
            return new(new LedgerError(LedgerError.AccountClosed, $"Account {record.Id} is closed."));
        }

        // Int128: a customer's balance and pending debits are each within 64 bits, their difference need not be.
        var available = (Int128)record.BalanceMinor - record.PendingDebitMinor;
        return available + overdraftLimitMinor < 0
            ? new(new LedgerError(LedgerError.OverdraftInUse,
                $"Account {record.Id} has {available} {record.Currency} available; an overdraft limit of {overdraftLimitMinor} would leave it overdrawn beyond its limit."))
            : null;
    }

    /// <summary>The account, or null if there is none. System accounts sum their shards.</summary>
    public async Task<Account?> GetAccountAsync(AccountId id, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(id);
        if (!id.IsSystem)
        {
            var stored = await store.RetryingAsync(token => store.GetAsync(Keys.Account(id), serializable: false, token), cancellationToken);
            return stored.Exists ? ToAccount(LedgerJson.DecodeAccount(stored.Value!), stored.Version) : null;
        }

        var prefix = Keys.SystemShardsPrefix(id);
        var range = await store.RetryingAsync(
            token => store.RangeAsync(new RangeRequest { Key = EtcdBytes.Key(prefix), RangeEnd = EtcdBytes.PrefixEnd(prefix) }, token),
            cancellationToken);
        var shards = range.Kvs.Select(kv => (Record: LedgerJson.DecodeAccount(kv.Value), kv.Version)).ToArray();
        return new Account(
            id, Currency.FromCode(TransferRules.SystemCurrency(id)), 0, false,
            // Summed in 128 bits: LedgerLimits keeps every shard small enough for the total to fit in 64.
            LedgerLimits.ToInt64(LedgerLimits.Sum(shards, shard => shard.Record.BalanceMinor), $"The balance of {id}"),
            LedgerLimits.ToInt64(LedgerLimits.Sum(shards, shard => shard.Record.PendingDebitMinor), $"The pending debits of {id}"),
            LedgerLimits.ToInt64(LedgerLimits.Sum(shards, shard => shard.Record.PendingCreditMinor), $"The pending credits of {id}"),
            shards.Sum(shard => shard.Version));
    }

    /// <summary>A transfer as the journal holds it, or null (never applied, or archived past the replay window).</summary>
    public async Task<JournalEntry?> GetTransferAsync(TransferId id, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(id);
        var stored = await store.RetryingAsync(token => store.GetAsync(Keys.Transfer(id), serializable: false, token), cancellationToken);
        return stored.Exists ? JournalReader.ToEntry(LedgerJson.DecodeTransfer(stored.Value!), stored.ModRevision) : null;
    }

    /// <summary>Applies one transfer — with group commit (<see cref="GroupCommit"/>): written in one etcd transaction
    /// with the transfers that arrive meanwhile, keeping its own outcome. A void that finds no hold bars the hold's id
    /// (<see cref="HoldBars"/>): a hold still on its way is then refused, never placed after its void answered.</summary>
    public async Task<TransferOutcome> TransferAsync(TransferRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var outcome = await groups.TransferAsync(request, cancellationToken);
        return request is TransferRequest.VoidPending cancel && outcome is TransferOutcome.Failed { Error.Code: LedgerError.PendingTransferNotFound } notFound
            ? await bars.BarAsync(cancel, notFound, () => groups.TransferAsync(cancel, cancellationToken), cancellationToken)
            : outcome;
    }

    /// <summary>Applies up to <see cref="MaxBatchTransfers"/> transfers all-or-nothing, in order, in one transaction —
    /// with group commit, like single transfers (<see cref="GroupCommit"/>): the transaction may carry other transfers
    /// and batches too, each keeping its own outcome. A transfer already applied earlier with the same fields counts as
    /// applied (its original entry is returned).</summary>
    public async Task<BatchOutcome> ApplyBatchAsync(IReadOnlyList<TransferRequest> batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return await groups.ApplyAsync(batch, cancellationToken);
    }

    /// <summary>Voids a pending transfer whose timeout has passed; only the sweep calls this, under its fenced lock.</summary>
    internal async Task<TransferOutcome> ExpireAsync(TransferId pendingId, EtcdFencedLock fence, CancellationToken cancellationToken)
    {
        var outcome = await transfers.ApplyAsync([new ExpirePendingRequest(pendingId.Derive("expire"), pendingId)], fence, cancellationToken);
        return outcome.Transfers[0];
    }

    /// <summary>Removes a due expiry index entry that expired nothing, and the hold's bar it was for (<see cref="HoldBars"/>);
    /// only the sweep calls this, under its fenced lock.</summary>
    internal Task<bool> ForgetBarAsync(string indexKey, TransferId pendingId, EtcdFencedLock fence, CancellationToken cancellationToken) =>
        bars.ForgetAsync(indexKey, pendingId, fence, cancellationToken);

    /// <summary>The account's settings beside its record, in the same transaction (<see cref="AccountSettingsRecord"/>).</summary>
    private RequestOp SettingsOf(AccountRecord record) =>
        EtcdBytes.Put(Keys.Settings(AccountId.FromStorage(record.Id)), LedgerJson.Encode(AccountSettingsRecord.Of(record)));

    /// <summary>The standby's side of <see cref="AccountSettingsRecord"/>: the account as the active region set it up
    /// — opened (with no balance; its transfers bring that), its overdraft limit, closed — by compare-and-swap beside
    /// the journal applier's writes, with the same standby fence (<paramref name="standbyFenceKey"/>, compared absent:
    /// <see cref="JournalApplier"/>). <paramref name="settings"/> is the record as shipped. With <paramref name="checkpoint"/>
    /// (the replicator's page checkpoint and the revision it last saw), only while that key is unchanged: a replicator
    /// that fell behind put an older page's overdraft limit or open account over a newer one, for good.</summary>
    public async Task ApplyReplicatedSettingsAsync(
        Google.Protobuf.ByteString settings, CancellationToken cancellationToken, string? standbyFenceKey = null, (string Key, long ModRevision)? checkpoint = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var copy = LedgerJson.DecodeSettings(settings);
        var key = Keys.Account(AccountId.FromStorage(copy.Id));
        for (var attempt = 1; attempt <= MaxAttempts; attempt++)
        {
            var current = await store.RetryingAsync(token => store.GetAsync(key, serializable: false, token), cancellationToken);
            var record = current.Exists ? LedgerJson.DecodeAccount(current.Value!) : new AccountRecord(copy.Id, copy.Currency, 0, Unlimited: false, Closed: false, 0, 0, 0);
            if (current.Exists && record.OverdraftLimitMinor == copy.OverdraftLimitMinor && record.Closed == copy.Closed)
            {
                return;
            }

            var request = new TxnRequest();
            request.Compare.Add(EtcdBytes.ModRevisionIs(key, current.ModRevision));
            if (standbyFenceKey is not null)
            {
                request.Compare.Add(EtcdBytes.ModRevisionIs(standbyFenceKey, 0)); // only while the region holds no epoch (JournalApplier)
            }

            if (checkpoint is { } guard)
            {
                request.Compare.Add(EtcdBytes.ModRevisionIs(guard.Key, guard.ModRevision));
            }

            request.Success.Add(EtcdBytes.Put(key, LedgerJson.Encode(record with { OverdraftLimitMinor = copy.OverdraftLimitMinor, Closed = copy.Closed })));
            if ((await store.RetryingAsync(token => store.TxnAsync(request, token), cancellationToken)).Succeeded)
            {
                return;
            }

            if (standbyFenceKey is not null && (await store.RetryingAsync(token => store.GetAsync(standbyFenceKey, serializable: false, token), cancellationToken)).Exists)
            {
                throw new LedgerUnavailableException("This region holds an epoch (it writes): it applies no other region's account settings.");
            }

            if (checkpoint is { } moved && (await store.RetryingAsync(token => store.GetAsync(moved.Key, serializable: false, token), cancellationToken)).ModRevision != moved.ModRevision)
            {
                throw new InvalidOperationException($"Another replicator moved {moved.Key}; these settings are an older page's and are not applied.");
            }
        }

        throw new LedgerUnavailableException($"Copying the settings of account {copy.Id} conflicted {MaxAttempts} times.");
    }

    /// <summary>The standby's side of a hold bar the active region wrote (<see cref="HoldBars.ApplyCopyAsync"/>):
    /// the same bar here, while this region holds no epoch (<paramref name="standbyFenceKey"/> absent).</summary>
    public Task ApplyReplicatedBarAsync(Google.Protobuf.ByteString copy, string standbyFenceKey, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(copy);
        ArgumentException.ThrowIfNullOrEmpty(standbyFenceKey);
        return bars.ApplyCopyAsync(copy, standbyFenceKey, cancellationToken);
    }

    private static Account ToAccount(AccountRecord record, long version) => new(
        AccountId.FromStorage(record.Id), Currency.FromCode(record.Currency), record.OverdraftLimitMinor, record.Closed,
        record.BalanceMinor, record.PendingDebitMinor, record.PendingCreditMinor, version);
}

/// <summary>A guarded write was rejected because its lock had passed to another holder.</summary>
public sealed class FencedOffException(string message) : Exception(message);

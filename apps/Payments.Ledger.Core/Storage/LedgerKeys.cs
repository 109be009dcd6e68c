using System.Globalization;
using Payments.Domain;

namespace Payments.Ledger.Core.Storage;

/// <summary>Where the ledger keeps what, under one prefix (so tests and regions can share a cluster without touching).</summary>
/// <remarks>
/// <c>acct/{id}</c> customer account · <c>sys/{id}/{shard}</c> one shard of a system account ·
/// <c>xfer/{id}</c> applied transfer = journal entry · <c>hold/{id}</c> pending transfer state ·
/// <c>expiry/{timeoutUnixMs:D20}/{id}</c> index of pending transfers by timeout, for the sweep ·
/// <c>age/{appliedUnixMs:D20}/{firstId}</c> index of applied transactions by time, for the archiver ·
/// <c>archived/{id}</c> sums of an account's archived entries · <c>archive-horizon</c> ·
/// <c>settings/{id}</c> an account's currency, overdraft limit and closing, for the other region ·
/// <c>bars/{id}</c> a hold bar's copy, for the other region.
/// System accounts take part in every deposit and every payment; one key would make every transaction conflict
/// with every other, so each is split into <see cref="SystemAccountShards"/> shards summed on read.
/// </remarks>
internal sealed class LedgerKeys(string prefix)
{
    public const int SystemAccountShards = 16;

    public string Prefix { get; } = Etcd.EtcdBytes.AsPrefix(prefix);

    public string AccountsPrefix => Prefix + "acct/";

    public string SystemPrefix => Prefix + "sys/";

    public string TransfersPrefix => Prefix + "xfer/";

    public string HoldsPrefix => Prefix + "hold/";

    public string ExpiryPrefix => Prefix + "expiry/";

    public string AgePrefix => Prefix + "age/";

    public string ArchivedPrefix => Prefix + "archived/";

    /// <summary>Where the archiver records the newest applied time it archived (the standby's applier skips older
    /// entries it no longer holds: they were here and were archived).</summary>
    public string ArchiveHorizon => Prefix + "archive-horizon";

    /// <summary>A customer account or a system account shard: the records the account cache may hold.</summary>
    public bool IsAccountKey(string key) =>
        key.StartsWith(AccountsPrefix, StringComparison.Ordinal) || key.StartsWith(SystemPrefix, StringComparison.Ordinal);

    public string Account(AccountId id) => Prefix + "acct/" + id.Value;

    /// <summary>An account's settings (<see cref="AccountSettingsRecord"/>), shipped to the other region.</summary>
    public string Settings(AccountId id) => Prefix + SettingsFamily + id.Value;

    /// <summary>A replicated entry refused because it contradicts this region's decision on a hold (the entry as the
    /// other region applied it), kept for the operator: <c>ledger/conflicts/{transfer id}</c>.</summary>
    public string Conflict(TransferId id) => Prefix + "conflicts/" + id.Value;

    /// <summary>A hold bar's copy for the other region (<see cref="Transfers.HoldBars"/>): <c>bars/{pending id}</c>.</summary>
    public string Bar(TransferId pendingId) => Prefix + BarsFamily + pendingId.Value;

    /// <summary>The bars' family, relative to the ledger's prefix.</summary>
    public const string BarsFamily = "bars/";

    /// <summary>The settings' family, relative to the ledger's prefix.</summary>
    public const string SettingsFamily = "settings/";

    public string SystemShardsPrefix(AccountId id) => $"{Prefix}sys/{id.Value}/";

    /// <summary>The shard a transfer uses: chosen by the pending id for two-phase work, so a post or void meets its
    /// hold's shard, and a payout out of a hold by that hold too (TransferRules.Payout).</summary>
    public string SystemShard(AccountId id, TransferId shardBy) =>
        $"{Prefix}sys/{id.Value}/{Fnv1a(shardBy.Value) % SystemAccountShards:D2}";

    public string Transfer(TransferId id) => Prefix + "xfer/" + id.Value;

    public string Hold(TransferId pendingId) => Prefix + "hold/" + pendingId.Value;

    public string Expiry(long timeoutAtUnixMs, TransferId pendingId) =>
        $"{Prefix}expiry/{timeoutAtUnixMs.ToString("D20", CultureInfo.InvariantCulture)}/{pendingId.Value}";

    /// <summary>The age index: one key per etcd transaction that applied transfers, ordered by the time it applied
    /// them, naming them (the archiver's work list; etcd cannot range by revision without reading the whole prefix).</summary>
    public string Age(DateTimeOffset appliedAt, string firstTransferId) =>
        $"{Prefix}age/{appliedAt.ToUnixTimeMilliseconds().ToString("D20", CultureInfo.InvariantCulture)}/{firstTransferId}";

    /// <summary>The time an age key (<see cref="Age"/>) names; false for a key not of that form.</summary>
    public static bool TryAgeTimeOf(string ageKey, string agePrefix, out DateTimeOffset appliedAt)
    {
        ArgumentNullException.ThrowIfNull(ageKey);
        ArgumentNullException.ThrowIfNull(agePrefix);
        appliedAt = default;
        if (ageKey.Length < agePrefix.Length + 20 || !ageKey.StartsWith(agePrefix, StringComparison.Ordinal)
            || !long.TryParse(ageKey.AsSpan(agePrefix.Length, 20), NumberStyles.None, CultureInfo.InvariantCulture, out var millis)
            || millis > DateTimeOffset.MaxValue.ToUnixTimeMilliseconds())
        {
            return false;
        }

        appliedAt = DateTimeOffset.FromUnixTimeMilliseconds(millis);
        return true;
    }

    /// <summary>The exclusive upper end of age keys applied before <paramref name="before"/>.</summary>
    public string AgeEnd(DateTimeOffset before) =>
        $"{Prefix}age/{before.ToUnixTimeMilliseconds().ToString("D20", CultureInfo.InvariantCulture)}";

    /// <summary>What the archived entries of one account (all shards of a system account) add up to.</summary>
    public string Archived(string accountId) => Prefix + "archived/" + accountId;

    /// <summary>The exclusive upper end of expiry keys due at <paramref name="nowUnixMs"/>.</summary>
    public string ExpiryDueEnd(long nowUnixMs) =>
        $"{Prefix}expiry/{(nowUnixMs + 1).ToString("D20", CultureInfo.InvariantCulture)}";

    // string.GetHashCode is randomised per process; shards must be the same in every process, forever.
    private static uint Fnv1a(string value)
    {
        var hash = 2166136261u;
        foreach (var character in value)
        {
            hash = (hash ^ character) * 16777619u;
        }

        return hash;
    }
}

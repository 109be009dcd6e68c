namespace Payments.Etcd.Maintenance;

/// <summary>When a member's database is worth defragmenting, and how the defragmenter paces itself.</summary>
/// <param name="Interval">Between passes.</param>
/// <param name="MinDbSizeBytes">Below this a member is never defragmented (the work is not worth the pause).</param>
/// <param name="MinFreeFraction">Defragment when at least this share of the file is free pages (compacted history).</param>
/// <param name="QuotaBytes">The members' <c>--quota-backend-bytes</c> (0: etcd's default, 2 GiB): for the metrics, and to
/// decide whether a NOSPACE alarm can be disarmed after defragmenting.</param>
public sealed record DefragPolicy(TimeSpan Interval, long MinDbSizeBytes, double MinFreeFraction, long QuotaBytes)
{
    /// <summary>etcd's own default quota when none is set.</summary>
    public const long DefaultQuotaBytes = 2L * 1024 * 1024 * 1024;

    /// <summary>A NOSPACE alarm is disarmed only when every member is below this share of the quota after defragmenting
    /// (otherwise the live data itself is too large, and disarming would only let writes fill it again).</summary>
    public const double DisarmBelowQuotaFraction = 0.8;

    public static readonly TimeSpan LockLeaseTtl = TimeSpan.FromSeconds(30);

    /// <summary>A member being defragmented blocks its reads and writes; one this long is abandoned (it goes on in etcd).</summary>
    public static readonly TimeSpan DefragTimeout = TimeSpan.FromMinutes(2);

    public long EffectiveQuotaBytes => QuotaBytes > 0 ? QuotaBytes : DefaultQuotaBytes;

    public static DefragPolicy Default { get; } = new(TimeSpan.FromMinutes(5), 64L * 1024 * 1024, 0.5, 0);
}

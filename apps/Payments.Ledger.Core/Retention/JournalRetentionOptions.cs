namespace Payments.Ledger.Core.Retention;

/// <summary>Configuration section <c>Ledger:Retention</c>: how long the ledger remembers transfer ids, and when
/// settled journal entries leave etcd (ADR 0004).</summary>
/// <remarks>Safety: an entry applied at A (issued at I ≤ A + <see cref="MaxIssuedAhead"/>) leaves etcd no earlier than
/// A + <see cref="KeepFor"/>; a retry of its id at R ≥ that carries the same I and is accepted only if
/// I ≥ R − <see cref="ReplayWindow"/>, which <see cref="Validate"/>'s KeepFor &gt; ReplayWindow + MaxIssuedAhead rules
/// out. So a transfer is never applied twice, archived or not.</remarks>
public sealed class JournalRetentionOptions
{
    public const string Section = "Ledger:Retention";

    /// <summary>Whether settled entries are archived at all. The host runs the archiver only where the journal has a
    /// copy outside etcd (replication to Cosmos DB on); the replay window applies either way.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>A new transfer is accepted only if issued within this window; the saga's longest payment (24 h
    /// approval, a 15-minute hold, its retry budgets) fits with days to spare.</summary>
    public TimeSpan ReplayWindow { get; set; } = TimeSpan.FromDays(7);

    /// <summary>How far a caller's clock may run ahead of the ledger's.</summary>
    public TimeSpan MaxIssuedAhead { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How long an applied entry stays in etcd before it may be archived.</summary>
    public TimeSpan KeepFor { get; set; } = TimeSpan.FromDays(8);

    /// <summary>How far out of time order entries may arrive, by the time they were applied: a transaction's time is
    /// taken when it is evaluated, before it commits (a round trip, retries within a call's deadline), on the clock of
    /// whichever ledger replica wrote it (the clocks bounded by the failover's MaxClockSkew), and a standby receives the
    /// active region's entries in commit order. The archiver stays this far behind the newest entry it holds: a
    /// standby catching up on a backlog older than KeepFor archived each copy as soon as it was applied, and an entry
    /// applied there just after with an earlier time fell under the archive horizon and was skipped as archived — lost.
    /// Generous on purpose: it delays archival by minutes of what a region keeps for days.</summary>
    public TimeSpan ArrivalDisorderBound { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Pause between archival passes.</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>The longest hold the ledger accepts: at most the replay window, so every hold is resolved (posted,
    /// voided or expired) before its entry may leave etcd, and a post of it is never refused as too old.</summary>
    public TimeSpan MaxHoldTimeout(TimeSpan ceiling) => ReplayWindow < ceiling ? ReplayWindow : ceiling;

    public JournalRetentionOptions Validate()
    {
        if (ReplayWindow <= TimeSpan.Zero || MaxIssuedAhead < TimeSpan.Zero || Interval <= TimeSpan.Zero)
        {
            throw new InvalidOperationException($"{Section}: ReplayWindow and Interval must be positive and MaxIssuedAhead not negative.");
        }

        if (ArrivalDisorderBound <= TimeSpan.Zero || ArrivalDisorderBound >= KeepFor)
        {
            throw new InvalidOperationException($"{Section}:ArrivalDisorderBound ({ArrivalDisorderBound}) must be positive and below KeepFor ({KeepFor}).");
        }

        if (KeepFor <= ReplayWindow + MaxIssuedAhead)
        {
            throw new InvalidOperationException(
                $"{Section}:KeepFor ({KeepFor}) must exceed ReplayWindow ({ReplayWindow}) + MaxIssuedAhead ({MaxIssuedAhead}): "
                + "otherwise a retry could arrive after its transfer's record was archived and apply it again.");
        }

        return this;
    }
}

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

        if (KeepFor <= ReplayWindow + MaxIssuedAhead)
        {
            throw new InvalidOperationException(
                $"{Section}:KeepFor ({KeepFor}) must exceed ReplayWindow ({ReplayWindow}) + MaxIssuedAhead ({MaxIssuedAhead}): "
                + "otherwise a retry could arrive after its transfer's record was archived and apply it again.");
        }

        return this;
    }
}

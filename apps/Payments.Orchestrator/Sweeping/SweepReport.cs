namespace Payments.Orchestrator.Sweeping;

/// <summary>What one pass did.</summary>
/// <param name="Resumed">Records without a workflow, whose saga was started.</param>
/// <param name="Restarted">Sagas that ended without an outcome (failed, undetermined) or stopped progressing, run again.</param>
/// <param name="Recorded">Sagas that ended with an outcome their record missed, now recorded.</param>
/// <param name="CycleCompleted">The walk over the unfinished payments wrapped: every one was looked at since the last wrap.</param>
public sealed record SweepReport(int Scanned, int Resumed, int Restarted, int Recorded, int Failed, bool CycleCompleted, bool Takeover)
{
    /// <summary>In-flight markers removed because their payment had finished or had no record (see
    /// <c>PaymentRecordStore.DeleteStaleMarkersAsync</c>).</summary>
    public int StaleMarkers { get; init; }

    /// <summary>Reviewers' decisions recorded but never delivered to their waiting saga, sent to it again.</summary>
    public int Redelivered { get; init; }

    /// <summary>Of <see cref="Restarted"/>, runs restarted because their history stopped moving.</summary>
    public int StallRestarts { get; init; }

    /// <summary>Runs whose history stopped moving left for a later pass: past <see cref="SweepPolicy.MaxStallRestartsPerPass"/>.</summary>
    public int StallsDeferred { get; init; }

    public static SweepReport Idle { get; } = new(0, 0, 0, 0, 0, false, false);

    public int Actions => Resumed + Restarted + Recorded + Redelivered;
}

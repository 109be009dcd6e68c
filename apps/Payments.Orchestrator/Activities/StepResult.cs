namespace Payments.Orchestrator.Activities;

/// <summary>What a ledger step reports: done, or refused with a stable ledger error code (never retried).</summary>
public sealed record StepResult(bool Succeeded, string? ErrorCode) : IRunAnswer<StepResult>
{
    /// <inheritdoc/>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? Run { get; init; }

    public StepResult ForRun(string? run) => this with { Run = run };

    public static StepResult Ok { get; } = new(true, null);

    public static StepResult Refused(string code) => new(false, code);
}

namespace Payments.Orchestrator.Activities;

/// <summary>An activity's answer that names the saga run it was computed for (<see cref="Client.Models.PaymentInput.Run"/>):
/// the saga takes an answer only from its own run (<see cref="Workflows.SagaCalls"/>). Null from an activity of an
/// orchestrator from before, and for a run scheduled without a token.</summary>
public interface IRunAnswer
{
    string? Run { get; }
}

/// <summary><see cref="IRunAnswer"/> that can be named for a run; <see cref="PaymentActivity{TResult}"/> names every
/// answer so.</summary>
public interface IRunAnswer<out TSelf> : IRunAnswer
{
    TSelf ForRun(string? run);
}

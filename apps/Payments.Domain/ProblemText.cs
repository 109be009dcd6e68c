namespace Payments.Domain;

/// <summary>What a caller may read of a refusal: the reason our own validation wrote, without what .NET appends to an
/// <see cref="ArgumentException"/>'s message (" (Parameter 'value')", "Actual value was …").</summary>
public static class ProblemText
{
    public static string Reason(ArgumentException exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        var message = exception.Message;
        if (exception.ParamName is { } name && message.IndexOf($" (Parameter '{name}')", StringComparison.Ordinal) is var at and >= 0)
        {
            message = message[..at];
        }

        return message;
    }
}

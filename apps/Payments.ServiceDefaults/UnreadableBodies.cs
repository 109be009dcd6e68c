using Microsoft.AspNetCore.Http;

namespace Payments.ServiceDefaults;

/// <summary>A request body Kestrel could not read is the caller's mistake, answered as such (400, or Kestrel's own
/// 408/413) and not logged with a stack trace. Kestrel reports most as <see cref="BadHttpRequestException"/>, but a chunk
/// size past 2^31 − 1 as an <see cref="IOException"/> around an <see cref="OverflowException"/>
/// (Http1ChunkedEncodingMessageBody.CalculateChunkSize): that one was a 500 "retry" with a stack trace in the log, from
/// the edge and the API, for anyone without a key (a probe).</summary>
public static class UnreadableBodies
{
    /// <summary>Whether <paramref name="exception"/> is Kestrel's refusal of the request's framing or body.</summary>
    /// <remarks>The IOException only from Kestrel's own parser: one from elsewhere (a dependency's stream) is no fault
    /// of the caller's.</remarks>
    public static bool IsCallers(Exception? exception) =>
        exception is BadHttpRequestException
        || (exception is IOException { InnerException: OverflowException } && exception.Source == "Microsoft.AspNetCore.Server.Kestrel.Core");

    /// <summary>The status to answer: Kestrel's own (408 too slow, 413 too large, 400), or 400 for a broken chunk size.</summary>
    public static int StatusOf(Exception exception) =>
        exception is BadHttpRequestException bad ? bad.StatusCode : StatusCodes.Status400BadRequest;
}

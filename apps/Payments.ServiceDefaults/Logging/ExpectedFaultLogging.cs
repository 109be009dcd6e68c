using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Payments.ServiceDefaults.Logging;

/// <summary>Lines a library writes with an exception for a fault the platform expects and rides out — a dependency
/// away (a timeout, a refused connection, the ledger unavailable) — are summarised: the first of a kind as one warning
/// without the stack trace, then a count once a minute while it lasts. Anything else from those categories (another
/// exception, a line without one) is written as it was, with its stack trace. A probe found the Dapr workflow worker
/// writing a 4 KB trace for every activity attempt during a ledger or risk outage (170–550 a minute), and YARP one for
/// every forwarding timeout and failed probe of a frozen replica: an expected outage drowned in traces.</summary>
/// <remarks>The categories are turned off for every other provider, and this provider writes what it keeps under
/// <c>Payments.Faults.{category}</c> (a category the rule for the original does not cover).</remarks>
public static class ExpectedFaultLogging
{
    /// <summary>The prefix of the category this writes under (with the original category after it).</summary>
    public const string CategoryPrefix = "Payments.Faults.";

    public static ILoggingBuilder SummarizeExpectedFaults(this ILoggingBuilder logging, params string[] categories) =>
        SummarizeExpectedFaults(logging, TimeProvider.System, categories);

    /// <summary><see cref="SummarizeExpectedFaults(ILoggingBuilder, string[])"/> on <paramref name="time"/>'s clock.</summary>
    public static ILoggingBuilder SummarizeExpectedFaults(this ILoggingBuilder logging, TimeProvider time, params string[] categories)
    {
        ArgumentNullException.ThrowIfNull(logging);
        ArgumentNullException.ThrowIfNull(categories);
        foreach (var category in categories)
        {
            logging.AddFilter(category, LogLevel.None);
            logging.AddFilter<ExpectedFaultLoggerProvider>(category, LogLevel.Warning);
        }

        logging.Services.AddSingleton<ILoggerProvider>(services => new ExpectedFaultLoggerProvider(services, categories, time));
        return logging;
    }

    /// <summary>A fault of a dependency that is away or slow, in <paramref name="exception"/> or what it wraps.</summary>
    public static bool IsExpected(Exception? exception)
    {
        for (var depth = 0; exception is not null && depth < 8; depth++, exception = exception.InnerException)
        {
            if (exception is OperationCanceledException or TimeoutException or HttpRequestException or SocketException or IOException
                || exception.GetType().Name is "LedgerUnavailableException" or "RiskUnavailableException"
                || (exception.GetType().FullName == "Grpc.Core.RpcException" // by name: no gRPC reference here
                    && (exception.Message.Contains("StatusCode=\"Unavailable\"", StringComparison.Ordinal)
                        || exception.Message.Contains("StatusCode=\"DeadlineExceeded\"", StringComparison.Ordinal))))
            {
                return true;
            }
        }

        return false;
    }
}

/// <summary>The provider behind <see cref="ExpectedFaultLogging"/>.</summary>
public sealed class ExpectedFaultLoggerProvider(IServiceProvider services, IReadOnlyCollection<string> categories, TimeProvider time) : ILoggerProvider
{
    /// <summary>How often a fault that goes on is counted in the log.</summary>
    public static readonly TimeSpan SummaryInterval = TimeSpan.FromMinutes(1);

    /// <summary>Kinds of fault followed at once (category, event, exception type): past it, the table starts afresh.</summary>
    public const int MaxKinds = 256;

    private readonly Dictionary<string, (DateTimeOffset Since, int Count)> kinds = [];
    private readonly Lock gate = new();
    private ILoggerFactory? factory;

    public ILogger CreateLogger(string categoryName) =>
        categories.Any(category => categoryName.StartsWith(category, StringComparison.OrdinalIgnoreCase))
            ? new Summarizing(this, categoryName)
            : Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

    public void Dispose()
    {
    }

    private ILogger Target(string category) =>
        (factory ??= services.GetRequiredService<ILoggerFactory>()).CreateLogger(ExpectedFaultLogging.CategoryPrefix + category);

    /// <summary>Whether to write this expected fault now, and how many like it went unwritten since the last.</summary>
    private bool ShouldWrite(string kind, out int unwritten)
    {
        var now = time.GetUtcNow();
        lock (gate)
        {
            if (kinds.TryGetValue(kind, out var seen) && now - seen.Since < SummaryInterval)
            {
                kinds[kind] = (seen.Since, seen.Count + 1);
                unwritten = 0;
                return false;
            }

            if (kinds.Count >= MaxKinds)
            {
                kinds.Clear();
            }

            unwritten = seen.Count;
            kinds[kind] = (now, 0);
            return true;
        }
    }

    private sealed class Summarizing(ExpectedFaultLoggerProvider provider, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }

            var target = provider.Target(category);
            var message = formatter(state, exception);
            if (!ExpectedFaultLogging.IsExpected(exception))
            {
                target.Log(logLevel, eventId, exception, "{Message}", message); // as it was, with its trace
                return;
            }

            var cause = exception!.GetBaseException();
            if (provider.ShouldWrite($"{eventId.Id}|{cause.GetType().FullName}", out var unwritten))
            {
                var shown = message.Length > 300 ? message[..300] + "…" : message;
                target.LogWarning(eventId, "{Message} ({Fault}: {Detail}); an expected fault while a dependency is away: {Unwritten} more like it in the last minute, counted, not written",
                    shown, cause.GetType().Name, cause.Message.Length > 200 ? cause.Message[..200] + "…" : cause.Message, unwritten);
            }
        }
    }
}

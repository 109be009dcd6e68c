using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Payments.ServiceDefaults.Logging;

namespace Payments.Api.FunctionalTests;

/// <summary>Found by a fault probe: during a ledger or risk outage the Dapr workflow worker wrote a 4 KB stack trace
/// for every activity attempt (170–550 a minute), and YARP one for every forwarding timeout and failed probe. Those
/// categories' expected faults are now one warning without the trace, then a count a minute; anything else from them
/// (a defect) is written as it was, trace included; other categories are untouched.</summary>
public sealed class ExpectedFaultLoggingTests
{
    private const string Library = "Some.Library.Worker";

    [Fact]
    public void ExpectedFaults_AreSummarised_AndEverythingElseIsWrittenAsItWas()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-12-07T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var written = new ConcurrentQueue<(string Category, LogLevel Level, string Message, Exception? Exception)>();
        using var services = new ServiceCollection()
            .AddLogging(logging => logging.SetMinimumLevel(LogLevel.Information).AddProvider(new Capture(written)).SummarizeExpectedFaults(time, Library))
            .BuildServiceProvider();
        var library = services.GetRequiredService<ILoggerFactory>().CreateLogger(Library);

        for (var attempt = 0; attempt < 50; attempt++)
        {
            library.LogError(new EventId(7), new TaskCanceledException("The request was canceled due to the configured HttpClient.Timeout of 30 seconds"), "Error executing activity 'MoveMoney'");
        }

        var first = Assert.Single(written);
        Assert.Equal((ExpectedFaultLogging.CategoryPrefix + Library, LogLevel.Warning), (first.Category, first.Level));
        Assert.Null(first.Exception);
        Assert.Contains("TaskCanceledException", first.Message, StringComparison.Ordinal);

        time.Advance(ExpectedFaultLoggerProvider.SummaryInterval);
        library.LogError(new EventId(7), new TaskCanceledException("again"), "Error executing activity 'MoveMoney'");
        Assert.Equal(2, written.Count);
        Assert.Contains("49 more like it", written.Last().Message, StringComparison.Ordinal);

        var defect = new InvalidOperationException("a defect");
        library.LogError(new EventId(8), defect, "Error executing activity 'HoldFunds'");
        Assert.Same(defect, written.Last().Exception);
        Assert.Equal(LogLevel.Error, written.Last().Level);

        services.GetRequiredService<ILoggerFactory>().CreateLogger("Another.Category").LogWarning("untouched");
        Assert.Equal(("Another.Category", "untouched"), (written.Last().Category, written.Last().Message));
        Assert.DoesNotContain(written, line => line.Category == Library);
    }

    private sealed class Capture(ConcurrentQueue<(string, LogLevel, string, Exception?)> written) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Logger(categoryName, written);

        public void Dispose()
        {
        }

        private sealed class Logger(string category, ConcurrentQueue<(string, LogLevel, string, Exception?)> written) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                written.Enqueue((category, logLevel, formatter(state, exception), exception));
        }
    }
}

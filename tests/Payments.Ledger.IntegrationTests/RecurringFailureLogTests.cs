using System.Collections.Concurrent;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Payments.Etcd;
using Payments.Ledger.Core.Expiry;
using Payments.Ledger.Core;
using Payments.Ledger.IntegrationTests.Infrastructure;
using Payments.Testing;

namespace Payments.Ledger.IntegrationTests;

[Collection(EtcdCollection.Name)]
public sealed class RecurringFailureLogTests(EtcdClusterFixture etcd)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [Fact]
    public void AnOutage_IsOneWarningWhenItStarts_OneAMinuteWhileItLasts_AndOneWhenItEnds_NeverAStackTrace()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-12-07T12:00:00Z"));
        var lines = new Lines();
        var log = new RecurringFailureLog(lines, "Test pass", time);
        var away = new RpcException(new Status(StatusCode.Unavailable, "connection refused"));

        for (var pass = 0; pass < 60; pass++) // a pass a second for a minute, the outage showing as two exception types
        {
            log.Failed(pass % 2 == 0 ? away : new TimeoutException("etcd did not answer"));
            time.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.Single(lines.All);
        log.Failed(away); // a minute after the first line
        log.Succeeded();
        log.Succeeded(); // nothing more to say

        Assert.Equal(3, lines.All.Count);
        Assert.All(lines.All, line => Assert.Equal(LogLevel.Warning, line.Level));
        Assert.All(lines.All, line => Assert.Null(line.Exception));
        Assert.Contains("connection refused", lines.All[0].Message, StringComparison.Ordinal);
        Assert.Contains("61 failed passes in 60 s", lines.All[1].Message, StringComparison.Ordinal);
        Assert.Contains("succeeded again after 61 failed passes", lines.All[2].Message, StringComparison.Ordinal);
        Assert.False(log.Failing);
    }

    /// <summary>An outage that turns into a refusal (etcd back, but this app's role changed) is said at once, with its
    /// trace; an HTTP peer that answered 500 is a defect, one that did not answer or whose gateway said 503 an outage.</summary>
    [Fact]
    public void AnOutageTurningIntoARefusal_IsSaidAtOnce_AndOnlyAnHttpPeerAwayIsAnOutage()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-12-07T12:00:00Z"));
        var lines = new Lines();
        var log = new RecurringFailureLog(lines, "Test pass", time);
        log.Failed(new RpcException(new Status(StatusCode.Unavailable, "connection refused")));
        var refused = new RpcException(new Status(StatusCode.PermissionDenied, "etcdserver: permission denied"));
        log.Failed(refused);

        Assert.Equal(2, lines.All.Count);
        Assert.Equal(LogLevel.Error, lines.All[1].Level);
        Assert.Same(refused, lines.All[1].Exception);
        Assert.True(RecurringFailureLog.IsAwayOverHttp(new HttpRequestException("connection refused")));
        Assert.True(RecurringFailureLog.IsAwayOverHttp(new HttpRequestException("gateway", null, System.Net.HttpStatusCode.ServiceUnavailable)));
        Assert.False(RecurringFailureLog.IsAwayOverHttp(new HttpRequestException("a defect", null, System.Net.HttpStatusCode.InternalServerError)));
    }

    [Fact]
    public void AnUnexpectedFailure_IsAnErrorWithItsStackTrace_ButNotOneAPass()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-12-07T12:00:00Z"));
        var lines = new Lines();
        var log = new RecurringFailureLog(lines, "Test pass", time, exception => exception is IOException);
        var defect = new InvalidOperationException("a record that does not read");

        for (var pass = 0; pass < 10; pass++)
        {
            log.Failed(defect);
            time.Advance(TimeSpan.FromSeconds(1));
        }

        log.Failed(new IOException("the archive is away")); // the caller's own outage: a warning, no trace

        Assert.Equal(2, lines.All.Count);
        Assert.Equal(LogLevel.Error, lines.All[0].Level);
        Assert.Same(defect, lines.All[0].Exception);
        Assert.Equal(LogLevel.Warning, lines.All[1].Level);
        Assert.Null(lines.All[1].Exception);
    }

    /// <summary>What etcd away really raises through the hold-expiry sweeper's loop (its lock, its reads) is read as
    /// an outage: a fault probe found that loop writing a stack trace every second while etcd was away.</summary>
    [Fact]
    public async Task TheHoldExpirySweeper_WithEtcdAway_WritesNoStackTrace_AndSaysWhenItRecovers()
    {
        await using var proxy = new TcpProxy(new Uri(etcd.Cluster.ClientEndpoints.Split(',')[0]).Port);
        using var connection = EtcdConnection.Create($"https://127.0.0.1:{proxy.Port}", etcd.Cluster.RootTls);
        var ledger = new EtcdLedger(connection, EtcdClusterFixture.NewPrefix(), TimeProvider.System, NullLogger<EtcdLedger>.Instance);
        var lines = new Lines();
        var sweeper = new HoldExpirySweeper(ledger, "sweeper-away", lines);
        proxy.Cut();
        using var stop = new CancellationTokenSource(Bound * 2);
        var running = sweeper.RunAsync(TimeSpan.FromMilliseconds(20), stop.Token);

        await PollAsync(() => lines.All.Count > 0, "the sweeper said nothing of etcd being away");
        proxy.Restore();
        await PollAsync(() => lines.All.Any(line => line.Message.Contains("succeeded again", StringComparison.Ordinal)), "the sweeper never said it recovered");
        await stop.CancelAsync();
        try
        {
            await running.WaitAsync(Bound);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // stopped mid-pass: the loop ends by its token, as a hosted service's does
        }

        Assert.All(lines.All, line => Assert.True(line.Exception is null, $"A stack trace: {line.Message}\n{line.Exception}"));
        Assert.All(lines.All, line => Assert.Equal(LogLevel.Warning, line.Level));
    }

    /// <summary>A region that does not write holds copies of the active region's holds, due as their deadlines pass
    /// until the active region's expiries arrive: its sweeper tried each due hold every second and logged each refusal
    /// as an error with its stack trace. A pass now stops at the first refusal, and says once that the region does not
    /// write; once it writes again it says so and expires them.</summary>
    [Fact]
    public async Task TheHoldExpirySweeper_OfARegionThatDoesNotWrite_SaysSoOnce_AndExpiresOnceItWrites()
    {
        var prefix = EtcdClusterFixture.NewPrefix();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var mirror = new Payments.Etcd.Regions.RegionEpochMirror(etcd.Connection, prefix);
        Assert.True(await mirror.HoldAsync(4, TimeSpan.FromMinutes(1), CancellationToken.None));
        var ledger = new EtcdLedger(etcd.Connection, prefix + "ledger/", time, NullLogger<EtcdLedger>.Instance, () => new Payments.Etcd.Regions.RegionEpochFence(prefix, 4));
        var (debtor, creditor) = await TransferRetryTests.OpenPairAsync(ledger, fundsMinor: 1_000);
        for (var hold = 0; hold < 3; hold++)
        {
            await ledger.TransferAsync(new Payments.Ledger.Contracts.TransferRequest.Pending(
                Payments.Domain.TransferId.Parse($"hold-{hold}"), debtor, creditor, new Payments.Domain.Money(100, Payments.Domain.Currency.Usd), TimeSpan.FromMinutes(5)), CancellationToken.None);
        }

        time.Advance(TimeSpan.FromMinutes(6));
        await mirror.ReleaseAsync(CancellationToken.None); // demoted
        var lines = new Lines(LogLevel.Information);
        var sweeper = new HoldExpirySweeper(ledger, "sweeper-standby", lines);

        for (var pass = 0; pass < 3; pass++)
        {
            Assert.Equal(0, await sweeper.SweepOnceAsync(CancellationToken.None));
        }

        var said = Assert.Single(lines.All, line => line.Message.StartsWith("Hold expiry", StringComparison.Ordinal)); // its lock's lines aside
        Assert.Equal(LogLevel.Information, said.Level);
        Assert.Null(said.Exception);
        Assert.Contains("Hold expiry paused", said.Message, StringComparison.Ordinal);

        // The copies resolved by replication meanwhile (their index keys gone, as the applier leaves them): a pass with
        // nothing due wrote nothing, and says nothing of writing again.
        var index = await etcd.Connection.Client.GetRangeAsync(ledger.Keys.ExpiryPrefix);
        await etcd.Connection.Client.DeleteRangeAsync(ledger.Keys.ExpiryPrefix);
        Assert.Equal(0, await sweeper.SweepOnceAsync(CancellationToken.None));
        Assert.Single(lines.All, line => line.Message.StartsWith("Hold expiry", StringComparison.Ordinal));
        foreach (var kv in index.Kvs)
        {
            await etcd.Connection.Client.PutAsync(kv.Key.ToStringUtf8(), kv.Value.ToStringUtf8()); // due again
        }

        Assert.True(await mirror.HoldAsync(4, TimeSpan.FromMinutes(1), CancellationToken.None)); // it writes again
        Assert.Equal(3, await sweeper.SweepOnceAsync(CancellationToken.None));
        Assert.Contains(lines.All, line => line.Message.Contains("Hold expiry resumed", StringComparison.Ordinal));
        Assert.DoesNotContain(lines.All, line => line.Level >= LogLevel.Warning);
    }

    private static async Task PollAsync(Func<bool> done, string failure)
    {
        using var timeout = new CancellationTokenSource(Bound);
        while (!done())
        {
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(50), timeout.Token);
            }
            catch (OperationCanceledException)
            {
                Assert.Fail(failure);
            }
        }
    }

    private sealed record Line(LogLevel Level, string Message, Exception? Exception);

    private sealed class Lines(LogLevel least = LogLevel.Warning) : ILogger<HoldExpirySweeper>
    {
        private readonly ConcurrentQueue<Line> lines = new();

        public IReadOnlyList<Line> All => [.. lines];

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= least;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                lines.Enqueue(new Line(logLevel, formatter(state, exception), exception));
            }
        }
    }
}

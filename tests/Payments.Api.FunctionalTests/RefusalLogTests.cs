using Payments.ServiceDefaults.Security;

namespace Payments.Api.FunctionalTests;

/// <summary>Found by a probe: every refused internal or admin request wrote a line with the claimed caller header as
/// sent (30,000 characters: 50 requests grew the ledger's log by 1.5 MB). Refusals are counted, a line is written once
/// a minute at most, and what the caller sent is cut and escaped.</summary>
public sealed class RefusalLogTests
{
    [Fact]
    public void AFloodOfRefusals_WritesOneLine_AndCountsTheRest()
    {
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var log = new RefusalLog(clock);
        Assert.True(log.ShouldLog(out var first));
        Assert.Equal(1, first);
        var lines = Enumerable.Range(0, 1_000).Count(_ => log.ShouldLog(out long _));
        clock.Advance(RefusalLog.Interval - TimeSpan.FromMilliseconds(1));
        Assert.False(log.ShouldLog(out long _)); // still within the minute
        Assert.Equal(0, lines);

        clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.True(log.ShouldLog(out var counted)); // the minute is over: a line, with every refusal since the last one
        Assert.Equal(1_002, counted);
        Assert.False(log.ShouldLog(out long _)); // and the next minute starts
    }

    [Fact]
    public void WhatTheCallerSent_IsCut_AndCannotForgeALine()
    {
        var shown = RefusalLog.Shown(new string('A', 30_000));
        Assert.Equal(RefusalLog.MaxShown + 1, shown.Length);
        Assert.EndsWith("…", shown, StringComparison.Ordinal);
        Assert.Equal("api\\u000a2026-12-06 fake line", RefusalLog.Shown("api\n2026-12-06 fake line"));
        Assert.Equal(string.Empty, RefusalLog.Shown(null));
    }
}

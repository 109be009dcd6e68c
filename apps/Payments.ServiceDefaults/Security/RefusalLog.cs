using System.Text;

namespace Payments.ServiceDefaults.Security;

/// <summary>How a refused caller is logged: one line per <see cref="Interval"/> at most, with how many were refused
/// since, and what the caller sent shown cut to <see cref="MaxShown"/> characters. One line per request let anyone who
/// reaches a port write the app's log at will: a probe sent 50 unauthenticated requests with a 30,000-character caller
/// header to the ledger and grew its log by 1.5 MB.</summary>
/// <param name="time">The clock (null: the system's); a test moves a fake one past <see cref="Interval"/>.</param>
public sealed class RefusalLog(TimeProvider? time = null)
{
    public static readonly TimeSpan Interval = TimeSpan.FromMinutes(1);

    /// <summary>Characters of a caller's value a line repeats, at most.</summary>
    public const int MaxShown = 64;

    private const long Never = long.MinValue;
    private readonly TimeProvider time = time ?? TimeProvider.System;
    private long lastLogAt = Never;
    private long refusedSinceLog;

    /// <summary>Counts a refusal; true (with the refusals since the last line, this one included) when it is time to
    /// write a line for it.</summary>
    public bool ShouldLog(out long refused)
    {
        Interlocked.Increment(ref refusedSinceLog);
        var now = time.GetTimestamp();
        var last = Interlocked.Read(ref lastLogAt);
        if ((last != Never && time.GetElapsedTime(last, now) < Interval) || Interlocked.CompareExchange(ref lastLogAt, now, last) != last)
        {
            refused = 0;
            return false;
        }

        refused = Interlocked.Exchange(ref refusedSinceLog, 0);
        return true;
    }

    /// <summary>A caller's value as a line shows it: at most <see cref="MaxShown"/> characters (marked when cut), control
    /// characters as <c>\uXXXX</c> so that a value cannot forge a line of its own.</summary>
    public static string Shown(string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            return string.Empty;
        }

        var cut = value.Length <= MaxShown ? value : value[..MaxShown] + "…";
        var shown = new StringBuilder(cut.Length);
        foreach (var c in cut)
        {
            shown.Append(char.IsControl(c) || char.IsSurrogate(c) ? $"\\u{(int)c:x4}" : c.ToString());
        }

        return shown.ToString();
    }
}

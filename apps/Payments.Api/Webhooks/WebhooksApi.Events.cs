using System.Globalization;
using System.Text.RegularExpressions;
using Etcdserverpb;
using Payments.Api.Problems;
using Payments.Api.Security;
using Payments.Etcd;
using Payments.Orchestrator.Client.Records;

namespace Payments.Api.Webhooks;

public static partial class WebhooksApi
{
    private const int DefaultEventsPage = 50;

    /// <summary><c>GET /v1/events</c>: the merchant's events in the order of their time (the writer's clock), a page
    /// at a time. Events are written in the transactions that change the payments, so every committed change is here,
    /// for the events' retention; a consumer replaying after an outage starts a minute before the last event it saw
    /// (<c>?since=</c>) and skips ids it has — clocks of two writers may differ a little.</summary>
    private static async Task<IResult> ListEventsAsync(HttpContext context, PaymentRecordStore records, EtcdConnection etcd)
    {
        var query = context.Request.Query;
        var errors = new Dictionary<string, string>();
        var limit = DefaultEventsPage;
        if (query.TryGetValue("limit", out var limitText)
            && (limitText.Count != 1 || !int.TryParse(limitText.ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit is < 1 or > MaxEventsPage))
        {
            errors["limit"] = $"limit must be a whole number from 1 to {MaxEventsPage}.";
        }

        var now = context.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow();
        string? after = query.TryGetValue("after", out var afterText) ? afterText.ToString() : null;
        if (after is not null && !IsCursor(after, now))
        {
            errors["after"] = "after must be a nextCursor from an earlier page.";
        }

        DateTimeOffset? since = null;
        if (query.TryGetValue("since", out var sinceText))
        {
            if (sinceText.Count == 1 && Rfc3339(sinceText.ToString()) is { } parsed && parsed <= now + MaxSinceAhead)
            {
                since = parsed;
            }
            else
            {
                errors["since"] = $"since must be an RFC 3339 time with its offset, e.g. 2026-12-03T10:00:00Z, at most {MaxSinceAhead.TotalHours:0} h ahead of now"
                    + (sinceText.ToString().Contains(' ', StringComparison.Ordinal) ? " (a '+' in a query string reads as a space: send an offset's '+' as %2B)." : ".");
            }
        }

        if (after is not null && since is not null)
        {
            errors["after"] = "Give after or since, not both.";
        }

        string? type = query.TryGetValue("type", out var typeText) ? typeText.ToString() : null;
        if (type is not null && !PaymentEvents.Types.Contains(type, StringComparer.Ordinal))
        {
            errors["type"] = "type must be one of: " + string.Join(", ", PaymentEvents.Types) + ".";
        }

        Payments.Api.Apis.Validate.QueryParameters(query, ["limit", "after", "since", "type"], errors);
        if (errors.Count > 0)
        {
            return Reply.Invalid(errors).ToResult();
        }

        var root = PaymentEvents.MerchantRoot(records.EventsRoot, ApiKeyMiddleware.MerchantOf(context));
        var from = after is not null ? root + after + "\0" : since is { } time ? root + EtcdBytes.TimeKey(time) : root;
        var start = after is not null
            ? DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(after.AsSpan(0, 13), NumberStyles.None, CultureInfo.InvariantCulture))
            : since ?? DateTimeOffset.MinValue;
        var oldestKept = context.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow()
            - context.RequestServices.GetRequiredService<WebhookOptions>().EventRetention;
        var (kvs, more) = await ReadEventsAsync(etcd, root, from, start > oldestKept ? start : oldestKept, limit, context.RequestAborted);
        // Read into the event's type and written as the API writes answers: events stored with null members (before
        // they were left out) read the same as the webhook bodies of today, and the document has the page's schema.
        var data = kvs
            .Select(kv => PaymentEvents.Deserialize(kv.Value.Span))
            .Where(paymentEvent => type is null || paymentEvent.Type == type)
            .ToArray();
        var next = kvs.Count > 0 ? kvs[^1].Key.ToStringUtf8()[root.Length..] : after ?? CursorBefore(since);
        return Reply.Json(StatusCodes.Status200OK, new EventPage(data, more, next)).ToResult();
    }

    /// <summary>Whether <paramref name="after"/> is a cursor a page can have given. No page ends later than the clock
    /// allows an event to be written (a probe: a cursor edited to the year 2286 was an empty last page, and a consumer
    /// holding it saw no event until then); an hour past since's own bound, so that a cursor one replica made from
    /// since is not refused by another whose clock is a little behind.</summary>
    private static bool IsCursor(string after, DateTimeOffset now) =>
        CursorPattern().IsMatch(after)
        && long.Parse(after.AsSpan(0, 13), NumberStyles.None, CultureInfo.InvariantCulture) <= (now + MaxSinceAhead + TimeSpan.FromHours(1)).ToUnixTimeMilliseconds();

    /// <summary>The cursor of an empty first page: the place just before <paramref name="since"/> (or before every
    /// event), so that the page after it holds what <c>since</c> would. A probe: an empty page read with <c>since</c>
    /// had no nextCursor, and a consumer had nothing to go on paging with.</summary>
    private static string CursorBefore(DateTimeOffset? since) =>
        since is { } time && time.ToUnixTimeMilliseconds() > 0
            ? EtcdBytes.TimeKey(time.AddMilliseconds(-1)) + "/evt_" + new string('f', 24)
            : EtcdBytes.TimeKey(DateTimeOffset.UnixEpoch) + "/evt_" + new string('0', 24);

    /// <summary>Ranges a page reads at most before its last, which runs to the merchant's last event.</summary>
    private const int MaxEventWindows = 8;

    /// <summary>Range reads per page at most: a read per window, and more only where another merchant's keys cut one.</summary>
    private const int MaxEventReads = 4 * (MaxEventWindows + 1);

    /// <summary>How much later each window ends than the one before it begins: 1 min, 4, 16, … — eight windows span
    /// 15 days, past the longest retention a merchant's events are kept.</summary>
    private const int EventWindowGrowth = 4;

    private static readonly TimeSpan FirstEventWindow = TimeSpan.FromMinutes(1);

    /// <summary>Up to <paramref name="limit"/> events from <paramref name="from"/> on, read in windows of time that grow
    /// from <paramref name="start"/>: etcd visits every key in a range to count it, whatever the limit, so one range to the
    /// merchant's last event cost a page in proportion to all its events after the cursor (a big merchant paging from
    /// the start: each page the rest of its retention). A window costs what it holds. More is true when the page is full
    /// and events may follow it (a following page can then be empty, with more false).</summary>
    private static async Task<(List<Mvccpb.KeyValue> Kvs, bool More)> ReadEventsAsync(
        EtcdConnection etcd, string root, string from, DateTimeOffset start, int limit, CancellationToken cancellationToken)
    {
        var kvs = new List<Mvccpb.KeyValue>(limit);
        var window = FirstEventWindow;
        var more = false;
        var reads = 0;
        for (var round = 0; round <= MaxEventWindows && kvs.Count < limit && reads < MaxEventReads; round++)
        {
            // Each window ends later than the cursor (start is never before the cursor's time), so from only grows. The
            // last ends where keys stop starting with a digit (':' follows '9'): beyond are the events of a merchant whose
            // id, from before ids were checked, is this one's, a '/' and more — a review found them on the last page of
            // merchant acme's events (acme/eu's).
            var end = round < MaxEventWindows ? root + EtcdBytes.TimeKey(start + window) : root + ":";
            RangeResponse response;
            do
            {
                var request = new RangeRequest { Key = EtcdBytes.Key(from), RangeEnd = EtcdBytes.Key(end), Limit = limit - kvs.Count };
                response = await EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(request, cancellationToken: token), cancellationToken);
                reads++;
                // Such a merchant's keys can also sort among time keys (acme/17…): they are skipped, and a range they cut
                // short is read on from its last key, so the window is read whole (a diff review: the rest was skipped).
                kvs.AddRange(response.Kvs.Where(kv => CursorPattern().IsMatch(kv.Key.ToStringUtf8().AsSpan(root.Length)))); // an own event's key is a cursor
                if (response.More && kvs.Count < limit)
                {
                    from = response.Kvs[^1].Key.ToStringUtf8() + "\0";
                }
            }
            while (response.More && kvs.Count < limit && reads < MaxEventReads);

            more = response.More || (kvs.Count >= limit && round < MaxEventWindows);
            from = string.CompareOrdinal(end, from) > 0 ? end : from;
            (start, window) = (start + window, window * EventWindowGrowth);
        }

        // Out of reads on another merchant's keys (only such keys can make a page need more than its windows' reads):
        // an empty page saying "more" from the same cursor would have its client ask for ever.
        return (kvs, more && kvs.Count > 0);
    }

    [GeneratedRegex(@"^[0-9]{13}/evt_[0-9a-f]{24}\z")] // \z: '$' would admit a trailing newline
    private static partial Regex CursorPattern();

    /// <summary>RFC 3339's date-time: a time zone offset is required (a local time would be read in the server's zone,
    /// or as UTC, silently) and nothing else .NET would parse ("12/04/2026", "Dec 4 2026"). Any number of fraction
    /// digits (`time-secfrac = "." 1*DIGIT`; Go's RFC3339Nano sends 9, more than .NET's 7 — the rest is below a tick
    /// and dropped), and a leap second (:60) read as the last tick of its minute, which .NET cannot name.</summary>
    [GeneratedRegex(@"^(?<minute>[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}):(?<second>[0-9]{2})(\.(?<fraction>[0-9]{1,64}))?(?<offset>[Zz]|[+-][0-9]{2}:[0-9]{2})\z")]
    private static partial Regex Rfc3339Pattern();

    private static DateTimeOffset? Rfc3339(string text)
    {
        if (Rfc3339Pattern().Match(text) is not { Success: true } match)
        {
            return null;
        }

        var fraction = match.Groups["fraction"].Value;
        var (second, ticks) = match.Groups["second"].Value == "60"
            ? ("59", "9999999")
            : (match.Groups["second"].Value, fraction.Length > 7 ? fraction[..7] : fraction);
        var normalized = $"{match.Groups["minute"].Value}:{second}{(ticks.Length > 0 ? "." + ticks : string.Empty)}{match.Groups["offset"].Value}";
        return DateTimeOffset.TryParse(normalized, CultureInfo.InvariantCulture, DateTimeStyles.None, out var parsed) ? parsed : null;
    }

    /// <summary>How far ahead of the server's clock <c>since</c> may be: a little for clock skew. Event keys are times in
    /// 13 digits, so a time past 2286 sorted before every event and the page started from the first.</summary>
    private static readonly TimeSpan MaxSinceAhead = TimeSpan.FromDays(1);
}

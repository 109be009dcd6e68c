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

        string? after = query.TryGetValue("after", out var afterText) ? afterText.ToString() : null;
        if (after is not null && !CursorPattern().IsMatch(after))
        {
            errors["after"] = "after must be a nextCursor from an earlier page.";
        }

        DateTimeOffset? since = null;
        if (query.TryGetValue("since", out var sinceText))
        {
            var now = context.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow();
            if (sinceText.Count == 1 && Rfc3339Pattern().IsMatch(sinceText.ToString())
                && DateTimeOffset.TryParse(sinceText.ToString(), CultureInfo.InvariantCulture, DateTimeStyles.None, out var parsed)
                && parsed <= now + MaxSinceAhead)
            {
                since = parsed;
            }
            else
            {
                errors["since"] = $"since must be an RFC 3339 time with its offset, e.g. 2026-12-03T10:00:00Z, at most {MaxSinceAhead.TotalHours:0} h ahead of now.";
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

        if (errors.Count > 0)
        {
            return Reply.Invalid(errors).ToResult();
        }

        var root = PaymentEvents.MerchantRoot(records.EventsRoot, ApiKeyMiddleware.MerchantOf(context));
        var from = after is not null ? root + after + "\0" : since is { } time ? root + EtcdBytes.TimeKey(time) : root;
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(new RangeRequest
        {
            Key = EtcdBytes.Key(from), RangeEnd = EtcdBytes.PrefixEnd(root), Limit = limit,
        }, cancellationToken: token), context.RequestAborted);
        // Read into the event's type and written as the API writes answers: events stored with null members (before
        // they were left out) read the same as the webhook bodies of today, and the document has the page's schema.
        var data = response.Kvs
            .Select(kv => PaymentEvents.Deserialize(kv.Value.Span))
            .Where(paymentEvent => type is null || paymentEvent.Type == type)
            .ToArray();
        var next = response.Kvs.Count > 0 ? response.Kvs[^1].Key.ToStringUtf8()[root.Length..] : after;
        return Reply.Json(StatusCodes.Status200OK, new EventPage(data, response.More, next)).ToResult();
    }

    [GeneratedRegex(@"^[0-9]{13}/evt_[0-9a-f]{24}\z")] // \z: '$' would admit a trailing newline
    private static partial Regex CursorPattern();

    /// <summary>RFC 3339's date-time: a time zone offset is required (a local time would be read in the server's zone,
    /// or as UTC, silently) and nothing else .NET would parse ("12/04/2026", "Dec 4 2026").</summary>
    [GeneratedRegex(@"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,7})?([Zz]|[+-][0-9]{2}:[0-9]{2})\z")]
    private static partial Regex Rfc3339Pattern();

    /// <summary>How far ahead of the server's clock <c>since</c> may be: a little for clock skew. Event keys are times in
    /// 13 digits, so a time past 2286 sorted before every event and the page started from the first.</summary>
    private static readonly TimeSpan MaxSinceAhead = TimeSpan.FromDays(1);
}

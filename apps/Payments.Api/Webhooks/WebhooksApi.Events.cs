using System.Globalization;
using System.Text.Json;
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
            if (DateTimeOffset.TryParse(sinceText.ToString(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed) && sinceText.Count == 1)
            {
                since = parsed;
            }
            else
            {
                errors["since"] = "since must be an RFC 3339 time, e.g. 2026-12-03T10:00:00Z.";
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
        var data = response.Kvs
            .Select(kv => JsonSerializer.Deserialize<JsonElement>(kv.Value.Span))
            .Where(element => type is null || element.GetProperty("type").GetString() == type)
            .ToArray();
        var next = response.Kvs.Count > 0 ? response.Kvs[^1].Key.ToStringUtf8()[root.Length..] : after;
        return Reply.Json(StatusCodes.Status200OK, new EventPage(data, response.More, next)).ToResult();
    }

    [GeneratedRegex(@"^[0-9]{13}/evt_[0-9a-f]{24}\z")] // \z: '$' would admit a trailing newline
    private static partial Regex CursorPattern();
}

using System.Net;
using Etcdserverpb;
using Google.Protobuf;
using Payments.Etcd;
using Payments.Merchants;
using Payments.Orchestrator.Client.Records;

namespace Payments.Api.FunctionalTests;

/// <summary><c>GET /v1/events</c> reads a page in windows of time that grow from the cursor (a range to the merchant's
/// last event made etcd count every event after the cursor, per page): paging still returns each event once, in
/// order, across windows minutes and days apart, events older than the retention not yet trimmed included.</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class EventPagesTests(ApiSystemFixture system)
{
    private const int MaxPages = 30;

    [Fact]
    public async Task PagingReturnsEveryEventOnce_InOrder_AcrossWindowsOfEveryLength()
    {
        var merchant = $"merchant-{Guid.NewGuid():N}"[..20];
        using var client = await system.ClientForAsync(merchant, ApiScopes.PaymentsRead);
        var root = EtcdBytes.AsPrefix(new EtcdOptions { KeyPrefix = ApiSystemFixture.KeyPrefix }.PaymentsPrefix) + "~events/" + merchant + "/";
        var now = DateTimeOffset.UtcNow;
        TimeSpan[] ages =
        [
            TimeSpan.FromHours(100), // past the retention (96 h), not trimmed yet
            TimeSpan.FromHours(95), TimeSpan.FromHours(50), TimeSpan.FromHours(3), TimeSpan.FromHours(3),
            TimeSpan.FromMinutes(10), TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(29), TimeSpan.Zero,
        ];
        var written = new List<string>();
        for (var index = 0; index < ages.Length; index++)
        {
            var at = now - ages[index];
            var id = $"evt_{index:x24}";
            var paymentEvent = new PaymentEvent(id, PaymentEvents.Completed, at,
                new PaymentEventData($"pay_{index}", "completed", 100, "EUR", "a", "b", null, null, at, at));
            await system.Etcd.Kv.PutAsync(new PutRequest
            {
                Key = EtcdBytes.Key(root + EtcdBytes.TimeKey(at) + "/" + id), Value = ByteString.CopyFrom(PaymentEvents.Serialize(paymentEvent)),
            });
            written.Add(id);
        }

        foreach (var limit in new[] { 1, 2, 4, 100 })
        {
            Assert.Equal(written, await PageThroughAsync(client, $"/v1/events?limit={limit}"));
        }

        // From a time: the events at or after it.
        Assert.Equal(written.Skip(5), await PageThroughAsync(client, "/v1/events?limit=2&since=" + Uri.EscapeDataString((now - TimeSpan.FromHours(1)).ToString("O"))));

        // A review: merchant ids from before ids were checked may hold a '/', and the last window ran to the end of the
        // merchant's prefix: merchant/eu's events (and merchant/2026's) were on this merchant's last page.
        // And (a diff review) such keys can sort among the time keys ("1/" before every one): a range they cut short
        // skipped the rest of its window, and a page of them alone was empty with more events said to follow, for ever.
        foreach (var (legacy, index) in new[] { ("eu/", 100), ("2026/", 101), ("1/", 102), ("1/", 103), ("1/", 104) })
        {
            var at = now - TimeSpan.FromMinutes(1);
            var paymentEvent = new PaymentEvent($"evt_{index:x24}", PaymentEvents.Completed, at, new PaymentEventData("pay_legacy", "completed", 100, "EUR", "a", "b", null, null, at, at));
            await system.Etcd.Kv.PutAsync(new PutRequest
            {
                Key = EtcdBytes.Key(root + legacy + EtcdBytes.TimeKey(at) + "/" + paymentEvent.Id), Value = ByteString.CopyFrom(PaymentEvents.Serialize(paymentEvent)),
            });
        }

        Assert.Equal(written, await PageThroughAsync(client, "/v1/events?limit=100"));
        Assert.Equal(written, await PageThroughAsync(client, "/v1/events?limit=1"));
    }

    /// <summary>An empty first page still has a cursor, the place it began (a probe: one read with <c>since</c> had
    /// none, and a consumer polling had nothing to page on with): events written after it are on the page after it,
    /// from that very time, and an event from just before that time is not.</summary>
    [Fact]
    public async Task AnEmptyFirstPage_HasACursor_FromWhichLaterEventsArePaged()
    {
        var merchant = $"merchant-{Guid.NewGuid():N}"[..20];
        using var client = await system.ClientForAsync(merchant, ApiScopes.PaymentsRead);
        var root = EtcdBytes.AsPrefix(new EtcdOptions { KeyPrefix = ApiSystemFixture.KeyPrefix }.PaymentsPrefix) + "~events/" + merchant + "/";
        var since = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        var cursors = new List<string>();
        foreach (var url in new[] { "/v1/events?since=" + Uri.EscapeDataString(since.ToString("O")), "/v1/events" })
        {
            using var empty = await client.GetAsync(url);
            var page = await empty.JsonAsync();
            Assert.Empty(page.GetProperty("data").EnumerateArray());
            cursors.Add(page.GetProperty("nextCursor").GetString()!);
        }

        var before = await WriteEventAsync(root, since.AddMilliseconds(-1), 1);
        var at = await WriteEventAsync(root, since, 2);
        var later = await WriteEventAsync(root, since.AddSeconds(1), 3);
        Assert.Equal([at, later], await PageThroughAsync(client, "/v1/events?limit=1&after=" + Uri.EscapeDataString(cursors[0])));
        Assert.Equal([before, at, later], await PageThroughAsync(client, "/v1/events?limit=1&after=" + Uri.EscapeDataString(cursors[1])));
    }

    private async Task<string> WriteEventAsync(string root, DateTimeOffset at, int index)
    {
        var id = $"evt_{index:x24}";
        var paymentEvent = new PaymentEvent(id, PaymentEvents.Completed, at, new PaymentEventData($"pay_{index}", "completed", 100, "EUR", "a", "b", null, null, at, at));
        await system.Etcd.Kv.PutAsync(new PutRequest
        {
            Key = EtcdBytes.Key(root + EtcdBytes.TimeKey(at) + "/" + id), Value = ByteString.CopyFrom(PaymentEvents.Serialize(paymentEvent)),
        });
        return id;
    }

    private static async Task<List<string>> PageThroughAsync(HttpClient client, string first)
    {
        var ids = new List<string>();
        var url = first;
        for (var page = 0; page < MaxPages; page++)
        {
            using var response = await client.GetAsync(url);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var body = await response.JsonAsync();
            ids.AddRange(body.GetProperty("data").EnumerateArray().Select(item => item.GetProperty("id").GetString()!));
            if (!body.GetProperty("hasMore").GetBoolean())
            {
                return ids;
            }

            url = first.Split("&since=")[0].Split("&after=")[0] + "&after=" + Uri.EscapeDataString(body.GetProperty("nextCursor").GetString()!);
        }

        Assert.Fail($"Still more after {MaxPages} pages: {string.Join(", ", ids)}");
        return ids;
    }
}

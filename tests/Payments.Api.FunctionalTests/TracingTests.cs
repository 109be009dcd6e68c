using System.Collections.Concurrent;
using System.Diagnostics;

namespace Payments.Api.FunctionalTests;

[Collection(ApiSystemCollection.Name)]
public sealed class TracingTests(ApiSystemFixture system)
{
    [Fact]
    public async Task Deposit_IsTracedFromTheHttpRequestIntoTheLedgerTransaction()
    {
        var spans = new ConcurrentBag<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is "Payments" or "Microsoft.AspNetCore",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Add,
        };
        ActivitySource.AddActivityListener(listener);
        var client = await system.NewMerchantClientAsync();
        var account = $"t-{Guid.NewGuid():N}";

        await client.OpenAccountAsync(account, fundsMinor: 500);

        var ledger = spans.Where(span => span.OperationName == "ledger.apply" && (string?)span.GetTagItem("ledger.first_transfer_id") is { } id && id.StartsWith("dep_", StringComparison.Ordinal)).ToArray();
        var deposit = Assert.Single(ledger, span => (string?)span.GetTagItem("ledger.outcome") == "applied");
        // The API's and the ledger service's request spans stop just after their responses are sent: wait for both
        // (bounded) instead of racing them.
        bool IsApiDeposit(Activity span) => span.Source.Name == "Microsoft.AspNetCore" && span.TraceId == deposit.TraceId
            && (span.DisplayName + span.GetTagItem("url.path")).Contains("/deposits", StringComparison.Ordinal);
        bool IsLedgerTransfer(Activity span) => span.Source.Name == "Microsoft.AspNetCore" && span.TraceId == deposit.TraceId
            && span.DisplayName.StartsWith("POST /ledger/v1/transfers", StringComparison.Ordinal); // not the reads of the key's candidate deposits
        var waited = Stopwatch.StartNew();
        while (!(spans.Any(IsApiDeposit) && spans.Any(IsLedgerTransfer)) && waited.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(TimeSpan.FromMilliseconds(20));
        }

        // One trace from the client's request through the API, over HTTP into the ledger service, into the etcd transaction.
        var request = Assert.Single(spans, IsApiDeposit);
        var ledgerRequest = Assert.Single(spans, IsLedgerTransfer);
        Assert.Equal(ledgerRequest.SpanId, deposit.ParentSpanId);
        Assert.NotEqual(request.SpanId, ledgerRequest.SpanId);
    }

    /// <summary>The finding: the API took up the trace context a caller from outside sent — its trace id ran through the
    /// payment's saga and ledger spans, its sampled flag chose export, its baggage went into internal calls. At the
    /// public entrance a request starts its own trace (<c>OutsideTraceContext</c>).</summary>
    [Fact]
    public async Task TraceContextFromOutside_IsNotTakenUp_TheRequestStartsItsOwnTrace()
    {
        var spans = new ConcurrentBag<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "Microsoft.AspNetCore",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Add,
        };
        ActivitySource.AddActivityListener(listener);
        var client = await system.NewMerchantClientAsync();
        var account = $"t-{Guid.NewGuid():N}";
        var outside = ActivityTraceId.CreateRandom();
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/accounts/{account}");
        request.Headers.TryAddWithoutValidation("traceparent", $"00-{outside}-{ActivitySpanId.CreateRandom()}-01");
        request.Headers.TryAddWithoutValidation("baggage", "tenant=someone-else");

        using var response = await client.SendAsync(request);

        Assert.Equal(System.Net.HttpStatusCode.NotFound, response.StatusCode);
        bool IsTheRequest(Activity span) => span.Source.Name == "Microsoft.AspNetCore" && (span.DisplayName + span.GetTagItem("url.path")).Contains(account, StringComparison.Ordinal);
        var waited = Stopwatch.StartNew();
        while (!spans.Any(IsTheRequest) && waited.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(TimeSpan.FromMilliseconds(20));
        }

        var span = Assert.Single(spans, IsTheRequest);
        Assert.NotEqual(outside, span.TraceId);
        Assert.Equal(default, span.ParentSpanId);
        Assert.Empty(span.Baggage);
    }
}

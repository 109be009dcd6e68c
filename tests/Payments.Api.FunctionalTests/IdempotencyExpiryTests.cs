using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;
using Etcdserverpb;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Payments.Domain;
using Payments.Etcd;
using Payments.Orchestrator.Client.Gateway;
using Payments.Orchestrator.Client.Models;

namespace Payments.Api.FunctionalTests;

/// <summary>Issue 12 item 5, idempotency as Stripe does it: a key lives 24–25 h and, reused after that, starts a new
/// payment, while every retry within its window reaches the first one; duplicates waiting on a request in flight wait
/// on an etcd watch, not by writing to etcd every 50 ms.</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class IdempotencyExpiryTests(ApiSystemFixture system)
{
    private static readonly TimeSpan WaitBound = TimeSpan.FromSeconds(15);

    /// <summary>How long the Raft proposals of waiting duplicates are counted. Polling every 50 ms, 50 waiters would
    /// make ~2,000 proposals in it.</summary>
    private static readonly TimeSpan MeasuredWait = TimeSpan.FromSeconds(2);

    private const int Duplicates = 50;

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task AKeyReusedAfterItsWindow_StartsANewPayment_ButARecordLostWithinIt_DoesNot(bool windowOver)
    {
        // The replica's clock says when the window is over; etcd's own leases do not follow it, so the record's end
        // is played as etcd would play it: the record deleted. It starts a window ago, so that after it the clock is
        // now again (the ledger refuses transfers issued ahead of its own clock).
        await using var paid = await FirstPaymentAWindowAgoAsync();
        var (clock, merchant, client, key, firstId) = (paid.Clock, paid.Merchant, paid.Client, paid.Key, paid.FirstId);
        var (debtor, creditor) = (paid.Debtor, paid.Creditor);

        if (windowOver)
        {
            clock.Advance(PaidAWindowAgo.Window);
        }

        await ExpireIdempotencyRecordsAsync(merchant);
        using var reused = await client.PayAsync(debtor, creditor, 100, key);

        var secondId = (await reused.JsonAsync()).GetProperty("paymentId").GetString()!;
        Assert.Equal(windowOver, firstId != secondId);
        var second = await client.WaitForStatusAsync(secondId);
        Assert.True(second.GetProperty("status").GetString() == "completed", second.ToString());
        Assert.Equal(windowOver ? 200 : 100, await client.BalanceAsync(creditor));
    }

    /// <summary>The finding (a review's): a key's record lives up to an hour past the 24 h window (hourly shared leases),
    /// and the payment record counted as the key's only while younger than 24 h by the clock of the retry. A key whose
    /// record was never completed — the request that wrote the payment crashed before its answer, or a retry that took
    /// its claim over released it with a 503 — and was retried in that last hour took the claimed way, found its
    /// payment "too old" and started a second one: a second debit. The window now runs from the key's first use while
    /// its record lives.</summary>
    [Fact]
    public async Task AKeyNeverCompleted_RetriedInItsRecordsLastHour_FindsItsPayment_NotASecondOne()
    {
        await using var paid = await FirstPaymentAWindowAgoAsync();
        var (clock, client, key, firstId) = (paid.Clock, paid.Client, paid.Key, paid.FirstId);
        var (debtor, creditor) = (paid.Debtor, paid.Creditor);

        await LapseIdempotencyRecordsAsync(paid.Merchant);
        clock.Advance(IdempotencyStore.Retention + (IdempotencyStore.LeaseBucketWidth / 2));
        using var retry = await client.PayAsync(debtor, creditor, 100, key);

        Assert.Equal(HttpStatusCode.Accepted, retry.StatusCode);
        Assert.Equal(firstId, (await retry.JsonAsync()).GetProperty("paymentId").GetString());
        Assert.Equal(100, await client.BalanceAsync(creditor));
    }

    /// <summary>The merchant's Idempotency-Key records as a request leaves its record when it stopped before its answer
    /// (or a retry released it): a claim that lapsed, with the same creation and lease.</summary>
    private async Task LapseIdempotencyRecordsAsync(string merchant)
    {
        var records = $"{ApiSystemFixture.KeyPrefix}idempotency/{Convert.ToHexString(Encoding.UTF8.GetBytes(merchant))}/";
        var found = await system.Etcd.Client.GetRangeAsync(records);
        Assert.NotEmpty(found.Kvs);
        foreach (var kv in found.Kvs)
        {
            var record = System.Text.Json.Nodes.JsonNode.Parse(kv.Value.ToStringUtf8())!.AsObject();
            Assert.Equal("Completed", record["state"]!.GetValue<string>());
            record["state"] = "InProgress";
            record["statusCode"] = null;
            record["body"] = null;
            record["contentType"] = null;
            record["lockedUntil"] = record["createdAt"]!.GetValue<DateTimeOffset>() + IdempotencyStore.InProgressTimeout;
            await system.Etcd.Client.PutAsync(new PutRequest { Key = kv.Key, Value = Google.Protobuf.ByteString.CopyFromUtf8(record.ToJsonString()), Lease = kv.Lease });
        }
    }

    /// <summary>The finding: with the key's record lost (or left in the other region by a failover), the same key
    /// with another body was answered 202 with the first payment, so a payment the client believed accepted never
    /// ran. The payment record decides then, and its order must be the request's.</summary>
    [Fact]
    public async Task AKeysRecordLost_ThenAnotherBody_Is422_AndTheFirstPaymentStaysTheOnlyOne()
    {
        var merchant = NewMerchantId();
        var client = await system.ClientForAsync(merchant);
        var (debtor, creditor) = await IdempotencyAndIsolationTests.AccountsAsync(client);
        var key = Guid.NewGuid().ToString();
        using var first = await client.PayAsync(debtor, creditor, 100, key);
        var firstId = (await first.JsonAsync()).GetProperty("paymentId").GetString()!;
        Assert.Equal("completed", (await client.WaitForStatusAsync(firstId)).GetProperty("status").GetString());

        await ExpireIdempotencyRecordsAsync(merchant);
        using var other = await client.PayAsync(debtor, creditor, 250, key);
        using var same = await client.PayAsync(debtor, creditor, 100, key);

        Assert.Equal(HttpStatusCode.UnprocessableEntity, other.StatusCode);
        Assert.EndsWith("/idempotency-key-reuse", (await other.JsonAsync()).GetProperty("type").GetString());
        Assert.Equal(100, await client.BalanceAsync(creditor));
        // The first body under the key is refused now too: the key's answer is the 422 stored for the other body.
        Assert.Equal(HttpStatusCode.UnprocessableEntity, same.StatusCode);
    }

    /// <summary>A deposit's id comes from merchant and key, and the ledger keeps it 7 days: the key reused after its own
    /// window with another body was refused with the ledger's own code (a problem type no document lists) and its
    /// internal detail. Now it is the API's idempotency-key-reuse, and nothing is deposited — also when the other body
    /// names an account the merchant does not have, or another currency (answered, before, as a 404 or a currency
    /// mismatch of that account, and stored under the key as its answer).</summary>
    [Theory]
    [InlineData(null, 250, "USD")]
    [InlineData("nobody-has-this", 100, "USD")]
    [InlineData(null, 100, "EUR")]
    public async Task ADepositKeyReusedAfterItsWindow_WithAnotherBody_IsIdempotencyKeyReuse_AndDepositsNothing(string? otherAccount, long amountMinor, string currency)
    {
        var merchant = NewMerchantId();
        var client = await system.ClientForAsync(merchant);
        var account = $"dep-{Guid.NewGuid():N}"[..20];
        await client.OpenAccountAsync(account);
        var key = Guid.NewGuid().ToString();
        using var first = await client.SendJsonAsync($"/v1/accounts/{account}/deposits", "{\"amountMinor\":100,\"currency\":\"USD\"}", key);
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);

        await ExpireIdempotencyRecordsAsync(merchant);
        using var other = await client.SendJsonAsync(
            $"/v1/accounts/{otherAccount ?? account}/deposits", $"{{\"amountMinor\":{amountMinor},\"currency\":\"{currency}\"}}", key);

        Assert.Equal(HttpStatusCode.UnprocessableEntity, other.StatusCode);
        var problem = await other.JsonAsync();
        Assert.Equal(Payments.Domain.ProblemTypes.IdempotencyKeyReuse, problem.GetProperty("type").GetString());
        Assert.DoesNotContain("dep_", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(100, await client.BalanceAsync(account));
    }

    /// <summary>A deposit's id was merchant and key alone, issued "now" on every attempt: a key reused after the ledger
    /// archived its deposit (8 days) applied it again under the same transfer id, and a standby still holding the first
    /// skipped the second (the regions' balances diverged). Deposits now take a payment's scheme: within the key's
    /// window, even with its idempotency record lost (as in the other region after a failover), the same deposit;
    /// after it, a new deposit under a new id.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ADepositKeyReusedAfterItsWindow_MakesANewDeposit_ButARecordLostWithinIt_DoesNot(bool windowOver)
    {
        // A deposit's key names it until the end of the UTC day after it; the clock starts that long ago, as above.
        var window = TimeSpan.FromDays(2) + IdempotencyStore.LeaseBucketWidth;
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow - window);
        await using var replica = ReplicaOn(clock);
        var merchant = NewMerchantId();
        await using var throughEdge = await ReplicaClientAsync(replica, merchant);
        var (client, account) = (throughEdge.Http, await NewAccountAsync(throughEdge.Http));
        var key = Guid.NewGuid().ToString();
        const string body = "{\"amountMinor\":100,\"currency\":\"USD\"}";
        using var first = await client.SendJsonAsync($"/v1/accounts/{account}/deposits", body, key);
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);

        if (windowOver)
        {
            clock.Advance(window);
        }

        await ExpireIdempotencyRecordsAsync(merchant);
        using var reused = await client.SendJsonAsync($"/v1/accounts/{account}/deposits", body, key);

        Assert.Equal(HttpStatusCode.Created, reused.StatusCode);
        var (firstId, secondId) = ((await first.JsonAsync()).GetProperty("depositId").GetString(), (await reused.JsonAsync()).GetProperty("depositId").GetString());
        Assert.Equal(windowOver, firstId != secondId);
        Assert.Equal(windowOver ? 200 : 100, await client.BalanceAsync(account));
    }

    /// <summary>Found in review: a deposit's id carried the day of the attempt, so a first attempt at 23:59:59 whose
    /// answer was a 5xx (its claim given back, its deposit still on its way to the ledger) and a retry at 00:00:01 that
    /// read the ledger before that deposit landed named two deposits: funded twice. The day is the key's first claim's.</summary>
    [Fact]
    public async Task ADepositRetriedPastMidnight_KeepsItsFirstAttemptsDay()
    {
        var midnight = new DateTimeOffset(DateTimeOffset.UtcNow.UtcDateTime.Date, TimeSpan.Zero);
        var clock = new FakeTimeProvider(midnight - TimeSpan.FromSeconds(1));
        await using var replica = ReplicaOn(clock);
        var merchant = NewMerchantId();
        await using var throughEdge = await ReplicaClientAsync(replica, merchant);
        var (client, account) = (throughEdge.Http, await NewAccountAsync(throughEdge.Http));
        var key = IdempotencyKey.Parse(Guid.NewGuid().ToString());
        var path = $"/v1/accounts/{account}/deposits";
        const string body = "{\"amountMinor\":100,\"currency\":\"USD\"}";
        // The first attempt: claimed at 23:59:59, given back after its 5xx (its deposit not in the ledger yet).
        var store = new IdempotencyStore(system.Etcd, ApiSystemFixture.KeyPrefix + "idempotency/", clock);
        var first = Assert.IsType<IdempotencyBegin.Started>(await store.BeginAsync(
            merchant, key, IdempotencyStore.Fingerprint("POST", path, Convert.ToBase64String(Encoding.UTF8.GetBytes(body))), CancellationToken.None));
        await store.ReleaseAsync(first.Claim, CancellationToken.None);

        clock.Advance(TimeSpan.FromSeconds(2)); // 00:00:01
        using var retried = await client.SendJsonAsync(path, body, key.Value);

        Assert.Equal(HttpStatusCode.Created, retried.StatusCode);
        var firstAttemptsId = IdempotencyStore.OperationIdCandidates("dep_", 32, merchant, key, midnight - TimeSpan.FromSeconds(1))[1];
        Assert.Equal(firstAttemptsId, (await retried.JsonAsync()).GetProperty("depositId").GetString());
    }

    /// <summary>Found in review: a deposit applied just before midnight whose answer was lost, retried just after,
    /// was checked against the new day's volume before it was found in the ledger: 422 "nothing deposited", stored
    /// under the key, for money that was in the account (a merchant believing it would deposit again). A deposit the
    /// ledger has is replayed whatever the limits say now, and is not counted in another day's volume.</summary>
    [Fact]
    public async Task ADepositAppliedBeforeMidnight_IsReplayedByItsRetryAfter_WhateverThatDaysVolume()
    {
        var midnight = new DateTimeOffset(DateTimeOffset.UtcNow.UtcDateTime.Date, TimeSpan.Zero);
        var clock = new FakeTimeProvider(midnight - TimeSpan.FromSeconds(10));
        await using var replica = system.StartReplica(web =>
        {
            web.UseSetting("Payments:MoneyLimits:Default:MaxDepositVolumePerDayMinor", "1000");
            web.ConfigureServices(services => services.AddSingleton<TimeProvider>(clock));
        });
        var merchant = NewMerchantId();
        await using var throughEdge = await ReplicaClientAsync(replica, merchant);
        var (client, account) = (throughEdge.Http, await NewAccountAsync(throughEdge.Http));
        var path = $"/v1/accounts/{account}/deposits";
        const string body = "{\"amountMinor\":600,\"currency\":\"USD\"}";
        using var first = await client.SendJsonAsync(path, body, "late-deposit"); // 23:59:50
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        clock.Advance(TimeSpan.FromSeconds(20)); // 00:00:10, a new day
        using var early = await client.SendJsonAsync(path, body, "early-deposit"); // 600 of the new day's 1,000
        Assert.Equal(HttpStatusCode.Created, early.StatusCode);

        await ExpireIdempotencyRecordsAsync(merchant); // the first answer lost with the key's record
        using var retried = await client.SendJsonAsync(path, body, "late-deposit");
        using var rest = await client.SendJsonAsync(path, "{\"amountMinor\":400,\"currency\":\"USD\"}", "rest-of-the-day");

        Assert.Equal(HttpStatusCode.Created, retried.StatusCode);
        Assert.Equal((await first.JsonAsync()).GetProperty("depositId").GetString(), (await retried.JsonAsync()).GetProperty("depositId").GetString());
        Assert.Equal(HttpStatusCode.Created, rest.StatusCode); // the replay took none of the new day's volume
        Assert.Equal(1600, await client.BalanceAsync(account));
    }

    /// <summary>Found in review: a retry whose key's record was lost was checked against the payment limit before its
    /// payment was found, so a limit lowered since (or another region's) answered 422 "no payment started", stored
    /// under the key, for a payment that was running. A recorded payment is answered whatever the limit says now.</summary>
    [Fact]
    public async Task ARecordedPaymentsRetry_IsAnsweredWithIt_ThoughTheLimitWasLoweredSince()
    {
        var merchant = NewMerchantId();
        var apiKey = await system.Store.IssueApiKeyAsync(merchant, CancellationToken.None);
        await using var before = system.StartReplica();
        await using var beforeClient = await EdgeHost.ClientThroughAsync(before.ClientOptions.BaseAddress, apiKey);
        var (debtor, creditor) = await IdempotencyAndIsolationTests.AccountsAsync(beforeClient.Http);
        var key = Guid.NewGuid().ToString();
        using var first = await beforeClient.Http.PayAsync(debtor, creditor, 500, key);
        var paymentId = (await first.JsonAsync()).GetProperty("paymentId").GetString()!;

        await ExpireIdempotencyRecordsAsync(merchant);
        await using var lowered = system.StartReplica(web => web.UseSetting("Payments:MoneyLimits:Default:MaxPaymentMinor", "100"));
        await using var loweredClient = await EdgeHost.ClientThroughAsync(lowered.ClientOptions.BaseAddress, apiKey);
        using var retried = await loweredClient.Http.PayAsync(debtor, creditor, 500, key);
        using var another = await loweredClient.Http.PayAsync(debtor, creditor, 500, Guid.NewGuid().ToString());

        Assert.Equal(HttpStatusCode.Accepted, retried.StatusCode);
        Assert.Equal(paymentId, (await retried.JsonAsync()).GetProperty("paymentId").GetString());
        Assert.Equal(HttpStatusCode.UnprocessableEntity, another.StatusCode); // a new payment still meets the limit
        Assert.Equal("completed", (await loweredClient.Http.WaitForStatusAsync(paymentId)).GetProperty("status").GetString());
    }

    /// <summary>A retry whose key's record was lost — as in the other region after a failover, where idempotency
    /// records are not shipped — found the payment record and started the saga again. For a finished payment a fresh
    /// saga decided it anew: a payment recorded failed (here: no funds) moved money once the debtor had funds, its
    /// record still saying failed. For one in flight, a fresh saga decided again what an earlier run may have got past.
    /// Now a finished payment starts nothing, and one in flight is resumed (the saga that asks the ledger first).</summary>
    [Fact]
    public async Task ARetryFindingItsPaymentRecorded_StartsNothingForAFinishedPayment_AndResumesOneInFlight()
    {
        var workflows = new WorkflowsControl();
        await using var replica = StartReplicaWith(workflows);
        var merchant = NewMerchantId();
        await using var throughEdge = await ReplicaClientAsync(replica, merchant);
        var client = throughEdge.Http;
        var (debtor, creditor) = await IdempotencyAndIsolationTests.AccountsAsync(client, fundsMinor: 10 * ApiSystemFixture.ReviewThresholdMinor);
        var broke = $"broke-{Guid.NewGuid():N}"[..20];
        await client.OpenAccountAsync(broke);
        var (failedKey, reviewedKey) = (Guid.NewGuid().ToString(), Guid.NewGuid().ToString());
        using var unfunded = await client.PayAsync(broke, creditor, 100, failedKey);
        var failedId = (await unfunded.JsonAsync()).GetProperty("paymentId").GetString()!;
        Assert.Equal("failed", (await client.WaitForStatusAsync(failedId)).GetProperty("status").GetString());
        using var large = await client.PayAsync(debtor, creditor, ApiSystemFixture.ReviewThresholdMinor + 1, reviewedKey);
        var reviewedId = (await large.JsonAsync()).GetProperty("paymentId").GetString()!;
        await client.WaitForStatusAsync(reviewedId, "awaiting_approval");
        await client.SendJsonAsync($"/v1/accounts/{broke}/deposits", "{\"amountMinor\":1000,\"currency\":\"USD\"}", Guid.NewGuid().ToString());

        await ExpireIdempotencyRecordsAsync(merchant);
        using var failedAgain = await client.PayAsync(broke, creditor, 100, failedKey);
        using var reviewedAgain = await client.PayAsync(debtor, creditor, ApiSystemFixture.ReviewThresholdMinor + 1, reviewedKey);

        Assert.Equal((HttpStatusCode.Accepted, HttpStatusCode.Accepted), (failedAgain.StatusCode, reviewedAgain.StatusCode));
        Assert.Equal(new[] { failedId, reviewedId }.Order(StringComparer.Ordinal), workflows.Started.Order(StringComparer.Ordinal)); // the first requests only
        Assert.Equal([reviewedId], workflows.Resumed);
        Assert.Equal("failed", (await client.WaitForStatusAsync(failedId)).GetProperty("status").GetString());
        Assert.Equal(1000, await client.BalanceAsync(broke));
    }

    /// <summary>The 202 is stored with the payment record, in its transaction: once the record is written the payment
    /// is accepted, whether or not the saga could be started at once. A retry replays that answer, and the
    /// stuck-payment sweeper starts the saga (before, the first answer was a 503 and the retry started it).</summary>
    [Fact]
    public async Task APaymentWhoseSagaCouldNotStart_IsAccepted_ItsRetryReplaysThat_AndTheSweeperRunsIt_Once()
    {
        var workflows = new WorkflowsControl { FailuresLeft = 1 };
        await using var replica = StartReplicaWith(workflows);
        await using var throughEdge = await ReplicaClientAsync(replica, NewMerchantId());
        var client = throughEdge.Http;
        var (debtor, creditor) = await IdempotencyAndIsolationTests.AccountsAsync(client);
        var key = Guid.NewGuid().ToString();

        using var first = await client.PayAsync(debtor, creditor, 100, key);
        using var retried = await client.PayAsync(debtor, creditor, 100, key);

        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, retried.StatusCode);
        Assert.Equal(await first.Content.ReadAsStringAsync(), await retried.Content.ReadAsStringAsync());
        var paymentId = (await retried.JsonAsync()).GetProperty("paymentId").GetString()!;
        Assert.Equal([paymentId], workflows.Started);
        Assert.Equal("completed", (await client.WaitForStatusAsync(paymentId)).GetProperty("status").GetString());
        Assert.Equal(100, await client.BalanceAsync(creditor));
    }

    /// <summary>Issue 14 item 3: accepting a payment writes its record and the Idempotency-Key's answer in one etcd
    /// transaction — one Raft entry, where claim, record and answer used to take three.</summary>
    [Fact]
    public async Task AcceptingAPayment_WritesItsRecordAndTheKeysAnswer_InOneTransaction()
    {
        var merchant = NewMerchantId();
        var client = await system.ClientForAsync(merchant);
        var (debtor, creditor) = await IdempotencyAndIsolationTests.AccountsAsync(client);

        using var accepted = await client.PayAsync(debtor, creditor, 100, Guid.NewGuid().ToString());

        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        var paymentId = (await accepted.JsonAsync()).GetProperty("paymentId").GetString()!;
        var record = await system.Etcd.Client.GetAsync($"{ApiSystemFixture.KeyPrefix}payments/{paymentId}");
        var answers = await system.Etcd.Client.GetRangeAsync(
            $"{ApiSystemFixture.KeyPrefix}idempotency/{Convert.ToHexString(Encoding.UTF8.GetBytes(merchant))}/");
        var answer = Assert.Single(answers.Kvs, kv => kv.Value.ToStringUtf8().Contains(paymentId, StringComparison.Ordinal));
        Assert.Equal(Assert.Single(record.Kvs).CreateRevision, answer.ModRevision);
    }

    [Fact]
    public async Task DuplicatesOfASlowPayment_WaitWithoutWritingToEtcd_AndAllGetItsResponse()
    {
        var workflows = new WorkflowsControl { Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        await using var slowReplica = StartReplicaWith(workflows);
        var merchant = NewMerchantId();
        await using var slowThroughEdge = await ReplicaClientAsync(slowReplica, merchant);
        var onSlowReplica = slowThroughEdge.Http;
        var client = await system.ClientForAsync(merchant);
        var (debtor, creditor) = await IdempotencyAndIsolationTests.AccountsAsync(client);
        var key = Guid.NewGuid().ToString();

        var first = onSlowReplica.PayAsync(debtor, creditor, 100, key);
        await workflows.Entered.Task.WaitAsync(WaitBound);
        var beforeDuplicates = await RaftIndexAsync();
        var duplicates = Task.WhenAll(Enumerable.Range(0, Duplicates).Select(_ => client.PayAsync(debtor, creditor, 100, key)));
        // Each duplicate's first claim attempt is one proposal: once they are all in, they all wait.
        var waitingSince = Stopwatch.StartNew();
        while (await RaftIndexAsync() < beforeDuplicates + Duplicates)
        {
            Assert.True(waitingSince.Elapsed < WaitBound, $"The duplicates did not reach etcd within {WaitBound}.");
            await Task.Delay(20);
        }

        var waitStart = await RaftIndexAsync();
        await Task.Delay(MeasuredWait); // a measurement window, not a wait for a state
        var proposalsWhileWaiting = await RaftIndexAsync() - waitStart;
        workflows.Gate.SetResult();
        using var firstResponse = await first.WaitAsync(WaitBound);
        var responses = await duplicates.WaitAsync(WaitBound);

        Assert.True(proposalsWhileWaiting < 100,
            $"{Duplicates} waiting duplicates made {proposalsWhileWaiting} Raft proposals in {MeasuredWait.TotalSeconds} s (polling makes ~2,000).");
        Assert.Equal(HttpStatusCode.Accepted, firstResponse.StatusCode);
        var firstBody = await firstResponse.Content.ReadAsStringAsync();
        foreach (var response in responses)
        {
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            Assert.Equal(firstBody, await response.Content.ReadAsStringAsync());
            response.Dispose();
        }

        var paymentId = (await firstResponse.JsonAsync()).GetProperty("paymentId").GetString()!;
        Assert.Equal("completed", (await client.WaitForStatusAsync(paymentId)).GetProperty("status").GetString());
        Assert.Equal(100, await client.BalanceAsync(creditor));
    }

    /// <summary>What etcd does when a record's lease ends (or what losing the records looks like): the merchant's
    /// idempotency records are deleted; their lifetime anchors stay.</summary>
    private Task ExpireIdempotencyRecordsAsync(string merchant) => ExpireIdempotencyRecordsAsync(system, merchant);

    /// <summary>The merchant's Idempotency-Key records gone, as etcd ends them when their lease runs out.</summary>
    internal static async Task ExpireIdempotencyRecordsAsync(ApiSystemFixture system, string merchant)
    {
        var records = $"{ApiSystemFixture.KeyPrefix}idempotency/{Convert.ToHexString(Encoding.UTF8.GetBytes(merchant))}/";
        var deleted = await system.Etcd.Client.DeleteRangeAsync(records);
        Assert.True(deleted.Deleted > 0, $"No idempotency record under {records}.");
    }

    /// <summary>The cluster's Raft index: one more for every proposal committed.</summary>
    private async Task<ulong> RaftIndexAsync() =>
        (await system.Etcd.MemberMaintenance(0).StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(5))).RaftIndex;

    /// <summary>A payment of 100 completed under a new key through a replica whose clock starts a key's whole window
    /// (24 h and its lease bucket) ago, so that advancing it by <see cref="PaidAWindowAgo.Window"/> brings it to now
    /// again (the ledger refuses transfers issued ahead of its own clock).</summary>
    private async Task<PaidAWindowAgo> FirstPaymentAWindowAgoAsync()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow - PaidAWindowAgo.Window);
        var replica = ReplicaOn(clock);
        EdgeClient? throughEdge = null;
        try
        {
            var merchant = NewMerchantId();
            throughEdge = await ReplicaClientAsync(replica, merchant);
            var client = throughEdge.Http;
            var (debtor, creditor) = await IdempotencyAndIsolationTests.AccountsAsync(await system.ClientForAsync(merchant));
            var key = Guid.NewGuid().ToString();
            using var first = await client.PayAsync(debtor, creditor, 100, key);
            var firstId = (await first.JsonAsync()).GetProperty("paymentId").GetString()!;
            Assert.Equal("completed", (await client.WaitForStatusAsync(firstId)).GetProperty("status").GetString());
            return new PaidAWindowAgo(clock, replica, throughEdge, merchant, debtor, creditor, key, firstId);
        }
        catch
        {
            if (throughEdge is not null)
            {
                await throughEdge.DisposeAsync();
            }

            await replica.DisposeAsync();
            throw;
        }
    }

    /// <summary>What <see cref="FirstPaymentAWindowAgoAsync"/> made; disposing it stops the edge, then the replica.</summary>
    private sealed record PaidAWindowAgo(
        FakeTimeProvider Clock, WebApplicationFactory<Program> Replica, EdgeClient ThroughEdge,
        string Merchant, string Debtor, string Creditor, string Key, string FirstId) : IAsyncDisposable
    {
        public static readonly TimeSpan Window = IdempotencyStore.Retention + IdempotencyStore.LeaseBucketWidth;

        public HttpClient Client => ThroughEdge.Http;

        public async ValueTask DisposeAsync()
        {
            await ThroughEdge.DisposeAsync();
            await Replica.DisposeAsync();
        }
    }

    /// <summary>A replica whose clock is <paramref name="clock"/> (the rest of the system keeps real time).</summary>
    private WebApplicationFactory<Program> ReplicaOn(TimeProvider clock) =>
        system.StartReplica(web => web.ConfigureServices(services => services.AddSingleton(clock)));

    /// <summary>A new account of the client's merchant, in USD, for deposits.</summary>
    private static async Task<string> NewAccountAsync(HttpClient client)
    {
        var account = $"dep-{Guid.NewGuid():N}"[..20];
        await client.OpenAccountAsync(account);
        return account;
    }

    private WebApplicationFactory<Program> StartReplicaWith(WorkflowsControl control) =>
        system.StartReplica(web => web.ConfigureTestServices(services =>
        {
            var real = services.Last(service => service.ServiceType == typeof(IPaymentWorkflows));
            services.AddTransient<IPaymentWorkflows>(provider =>
                new ControlledWorkflows((IPaymentWorkflows)real.ImplementationFactory!(provider), control));
        }));

    /// <summary>A merchant's client reaching the replica as merchants do: through the edge.</summary>
    private async Task<EdgeClient> ReplicaClientAsync(WebApplicationFactory<Program> replica, string merchant) =>
        await EdgeHost.ClientThroughAsync(replica.ClientOptions.BaseAddress, await system.Store.IssueApiKeyAsync(merchant, CancellationToken.None));

    private static string NewMerchantId() => $"idem-{Guid.NewGuid():N}"[..20];

    /// <summary>What a test makes of the orchestrator: starts to fail, a gate the first start waits at.</summary>
    private sealed class WorkflowsControl
    {
        public int FailuresLeft;

        public TaskCompletionSource? Gate { get; init; }

        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public ConcurrentQueue<string> Started { get; } = new();

        public ConcurrentQueue<string> Resumed { get; } = new();
    }

    private sealed class ControlledWorkflows(IPaymentWorkflows real, WorkflowsControl control) : IPaymentWorkflows
    {
        public async Task StartAsync(PaymentInput input, CancellationToken cancellationToken)
        {
            control.Started.Enqueue(input.PaymentId);
            control.Entered.TrySetResult();
            if (control.Gate is { } gate)
            {
                await gate.Task.WaitAsync(WaitBound, cancellationToken);
            }

            if (Interlocked.Decrement(ref control.FailuresLeft) >= 0)
            {
                throw new HttpRequestException("The orchestrator is unreachable (injected by the test).");
            }

            await real.StartAsync(input, cancellationToken);
        }

        public Task ResumeAsync(PaymentInput input, CancellationToken cancellationToken)
        {
            control.Resumed.Enqueue(input.PaymentId);
            return real.ResumeAsync(input, cancellationToken);
        }

        public Task<PaymentWorkflowState?> GetAsync(string paymentId, CancellationToken cancellationToken) => real.GetAsync(paymentId, cancellationToken);

        public Task RaiseApprovalAsync(string paymentId, ApprovalDecision decision, CancellationToken cancellationToken) =>
            real.RaiseApprovalAsync(paymentId, decision, cancellationToken);
    }
}

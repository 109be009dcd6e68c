using System.Globalization;
using Etcdserverpb;
using Microsoft.OpenApi;
using Payments.Api.Contracts;
using Payments.Api.Idempotency;
using Payments.Api.Limits;
using Payments.Api.Problems;
using Payments.Api.Security;
using Payments.Domain;
using Payments.Etcd;
using Payments.Ledger.Contracts;
using Payments.Merchants;
using Payments.Orchestrator.Client.Gateway;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Client.Records;
using Payments.Api.OpenApi;

namespace Payments.Api.Apis;

public static partial class PaymentsApi
{
    public const int MaxReferenceLength = 140;

    /// <summary>The payment status route's name (the one that holds a request on purpose: <c>?wait=</c>).</summary>
    public const string GetPaymentEndpoint = "GetPayment";

    private const string FourEyes = "Scope payments:approve, and a key other than the one that created the payment (403 same-key-review). "
        + "One decision per payment: a different second one is 409 payment-already-decided; the decision is recorded and returned by GET.";

    public static void MapPaymentsApiV1(this IEndpointRouteBuilder app)
    {
        var payments = app.MapGroup("/v1/payments").WithTags("Payments");
        payments.MapPost("/", CreateAsync).WithName("CreatePayment").RequireScope(ApiScopes.PaymentsWrite)
            .JsonBody<CreatePaymentRequest>().IdempotencyKeyHeader("it names its payment for 24 to 25 h from its first use").Produces<PaymentAccepted>(StatusCodes.Status202Accepted).Problems(400, 404, 409, 413, 415, 422)
            .WithDescription("Scope payments:write. Needs an Idempotency-Key (it names its payment for 24 to 25 h; reused after that it is a new payment). Amount at most the currency's MaxPaymentMinor (422 amount-limit-exceeded); at most MaxPaymentsInFlightPerMerchant unfinished payments per merchant (429 too-many-payments-in-flight with Retry-After).");
        payments.MapGet("/{paymentId}", PaymentReads.GetAsync).WithName(GetPaymentEndpoint).RequireScope(ApiScopes.PaymentsRead)
            .Produces<PaymentResponse>().Problems(400, 404)
            .QueryParameter("wait", "Seconds to wait for a change of status (0, the default, answers at once).",
                () => new OpenApiSchema { Type = JsonSchemaType.Integer, Minimum = "0", Maximum = PaymentStatusWaits.MaxWaitSeconds.ToString(CultureInfo.InvariantCulture) })
            .QueryParameter("status", "Only with wait (alone it is refused): the status the caller last saw; the answer comes as soon as the payment's differs.",
                () => new OpenApiSchema { Type = JsonSchemaType.String, Enum = [.. PaymentStatus.All.Select(status => (System.Text.Json.Nodes.JsonNode)status)] })
            .WithDescription("Scope payments:read. The payment's status and, once reviewed, review {decision, decidedBy (the reviewer's key id), decidedAt}. "
                + "?wait=<seconds, at most 30> answers as soon as the status differs from ?status= (default: the status when the request arrived) or is final, or when the wait ends.");
        payments.MapPost("/{paymentId}/approve", (string paymentId, HttpContext context, PaymentServices services) => DecideAsync(paymentId, true, context, services))
            .WithName("ApprovePayment").RequireScope(ApiScopes.PaymentsApprove).JsonBody<PaymentDecisionRequest>(required: false)
            .Produces<PaymentAccepted>(StatusCodes.Status202Accepted).Problems(400, 404, 409, 413, 415)
            .WithDescription(FourEyes);
        payments.MapPost("/{paymentId}/reject", (string paymentId, HttpContext context, PaymentServices services) => DecideAsync(paymentId, false, context, services))
            .WithName("RejectPayment").RequireScope(ApiScopes.PaymentsApprove).JsonBody<PaymentDecisionRequest>(required: false)
            .Produces<PaymentAccepted>(StatusCodes.Status202Accepted).Problems(400, 404, 409, 413, 415)
            .WithDescription(FourEyes);
    }

    private static async Task<IResult> CreateAsync(
        HttpContext context, PaymentServices services, IdempotentExecutor idempotency, MoneyLimits limits, Payments.Merchants.MerchantStore keys)
    {
        var merchant = ApiKeyMiddleware.MerchantOf(context);
        var (key, bytes, problem) = await IdempotentExecutor.ReadRequestAsync(context);
        if (problem is not null)
        {
            return problem.ToResult();
        }

        // A request that cannot be valid is answered before its key is claimed, as Stripe does (only a request that
        // began to run has a result to replay): nothing is written for it, so a flood of bad bodies costs etcd one read
        // each (the key's answer, if this very request was accepted under rules that refuse it now), and the client
        // may fix the body and send it again with the same key.
        var (request, parseProblem) = RequestBody.Parse<CreatePaymentRequest>(bytes!);
        if (parseProblem is not null)
        {
            return (await idempotency.AnsweredOrAsync(merchant, key!, "POST", "/v1/payments", bytes!, parseProblem, context.RequestAborted)).ToResult();
        }

        if (Errors(request!) is { Count: > 0 } errors)
        {
            return (await idempotency.AnsweredOrAsync(merchant, key!, "POST", "/v1/payments", bytes!, Reply.Invalid(errors), context.RequestAborted)).ToResult();
        }

        // One payment per key and window: every retry within the key's window (after a failure, a release, a takeover
        // of a crashed request, a failover) finds the same workflow; once the window passed it starts a new payment.
        var reply = await idempotency.RunUnclaimedFirstAsync(merchant, key!, "POST", "/v1/payments", bytes!,
            async claim => await StartAsync(merchant, key!, request!, claim, context, services, limits),
            context.RequestAborted, () => ApiKeyMiddleware.WithdrawnAsync(context, keys));
        return reply.ToResult();
    }

    private static Reply KeyExhausted() =>
        Reply.Problem(StatusCodes.Status422UnprocessableEntity, ProblemTypes.IdempotencyKeyReuse, "This Idempotency-Key was used with a different request.",
            "Today's payment of this Idempotency-Key is older than the idempotency window by this server's clock; use a new key.");

    /// <summary>Accepts the payment: its answer, or null (only with an unclaimed <paramref name="claim"/>) when the key
    /// is used already or was taken meanwhile, and nothing was written: then the request goes the claimed way.</summary>
    private static async Task<Reply?> StartAsync(
        string merchant, IdempotencyKey key, CreatePaymentRequest request, IdempotencyClaim claim, HttpContext context, PaymentServices services, MoneyLimits limits)
    {
        var currency = Currency.FromCode(request.Currency!); // checked by CreateAsync
        string[] accounts = [request.DebtorAccountId!, request.CreditorAccountId!];
        var admission = await PaymentAdmission.ReadAsync(
            merchant, claim, key, AccountsApi.LedgerCandidates(merchant, accounts), services, context.RequestAborted);
        if (admission.KeyUsed)
        {
            return null; // a retry, a duplicate, another body: the claimed way answers each as it always did
        }

        if (admission.PaymentIdOf(merchant, key, claim, services.Time.GetUtcNow()) is not { } paymentId)
        {
            return KeyExhausted();
        }

        // A payment already recorded under the key (a retry whose key's record was lost, or in the other region) is
        // answered whatever the limit says now: a limit lowered since, or another region's, answered 422 "no payment
        // started" for a payment that was running.
        if (!admission.HasRecord(paymentId)
            && AccountsApi.AboveLimit("payment", request.AmountMinor!.Value, limits.For(currency).MaxPaymentMinor, currency) is { } tooMuch)
        {
            return tooMuch;
        }

        var (ledgerIds, accountsProblem) = await AccountsAsync(accounts, admission, currency, context, services);
        if (accountsProblem is not null)
        {
            return accountsProblem;
        }

        if (admission.InFlight >= services.MaxInFlight && !admission.HasRecord(paymentId))
        {
            return TooManyInFlight(context, services.MaxInFlight);
        }

        // The ledger ids (the merchant's own ids, or their namespaced forms): the saga and the ledger work with these,
        // and what the merchant reads shows its own (AccountId.PublicId).
        var order = new PaymentOrder(
            paymentId, merchant, ledgerIds![0].Value, ledgerIds[1].Value, request.AmountMinor!.Value, request.Currency!, request.Reference);
        return await AcceptAsync(order, claim, context, services);
    }

    /// <summary>Records the payment with the key's answer and starts its saga: the 202, or null when an unclaimed
    /// attempt could not write both (see <see cref="StartAsync"/>).</summary>
    private static async Task<Reply?> AcceptAsync(PaymentOrder order, IdempotencyClaim claim, HttpContext context, PaymentServices services)
    {
        var paymentId = order.PaymentId;
        // The answer is stored with the record, in its transaction (one Raft entry, not two): from then on the payment
        // is accepted whatever happens to this request, and a retry replays the 202.
        var accepted = Reply.Json(StatusCodes.Status202Accepted, new PaymentAccepted(paymentId, PaymentStatus.Pending, Links(paymentId, PaymentStatus.Pending)));
        var answer = new TxnRequest();
        IdempotencyStore.AddCompletion(answer, claim, accepted.StatusCode, accepted.Body, accepted.ContentType);
        var creator = ApiKeyMiddleware.PrincipalOf(context);
        var accepting = PaymentRecord.Accepted(order, services.Time.GetUtcNow(), creator.KeyId, creator.Holder);
        // Never the record alone: without the key's record beside it, a request with the same key and another body
        // could claim the key and be answered with this body's payment; and a claim taken over by a retry (this
        // request stalled past the claim's timeout) leaves the payment to that retry, which may name it by another day.
        var created = await services.Records.CreateWithAsync(accepting, answer, context.RequestAborted);
        if (claim.IsUnclaimed && created is not { Created: true })
        {
            return null;
        }

        if (created is not { } made)
        {
            return Reply.Unavailable("Another request with this Idempotency-Key took this one over; retry with the same Idempotency-Key for its answer.");
        }

        var (record, recorded) = made;
        if (!recorded && record.Order != order)
        {
            // The key's payment exists with another body: its idempotency record was lost or stayed in the other
            // region, so only the payment record can tell. Answering with that payment would accept a body that never
            // runs; refuse as the key's record would have.
            return Reply.Problem(StatusCodes.Status422UnprocessableEntity, ProblemTypes.IdempotencyKeyReuse,
                "This Idempotency-Key was used with a different request.", "Use a new Idempotency-Key for a different request.");
        }

        if (!recorded && PaymentStatus.IsTerminal(record.Status))
        {
            // Finished already (a retry whose idempotency record was lost, or left in the other region by a failover):
            // a saga started now would decide it again — and move money for a payment recorded failed.
            return accepted with { Recorded = false };
        }

        try
        {
            await PaymentSagas.StartOrResumeAsync(record, recorded, services, context.RequestAborted);
        }
        catch (Exception exception) when (exception is OperationCanceledException or Grpc.Core.RpcException or HttpRequestException
            && !context.RequestAborted.IsCancellationRequested)
        {
            if (!recorded)
            {
                return Reply.Unavailable("The payment could not be started; retry with the same Idempotency-Key.");
            }

            // Accepted already (the 202 is stored): the stuck-payment sweeper starts a saga-less record after its grace.
            services.Logger.LogWarning("Payment {PaymentId} is accepted but its saga could not be started ({Error}); the sweeper will start it",
                paymentId, exception.Message);
        }

        ApiMetrics.PaymentsAccepted.Add(1);
        return accepted with { Recorded = recorded };
    }

    /// <summary>The ledger ids of both accounts; or 404 for an account the merchant does not own, 422 for one in
    /// another currency.</summary>
    private static async Task<(AccountId[]? LedgerIds, Reply? Problem)> AccountsAsync(
        string[] accounts, PaymentAdmission admission, Currency currency, HttpContext context, PaymentServices services)
    {
        var owned = await AccountsApi.OwnedCurrenciesAsync(accounts, admission.Accounts, context, services.Store, services.Ledger);
        var ledgerIds = new AccountId[accounts.Length];
        for (var index = 0; index < accounts.Length; index++)
        {
            if (owned[index] is not { } account)
            {
                return (null, Reply.AccountNotFound(accounts[index]));
            }

            if (account.Currency.Code != currency.Code)
            {
                return (null, AccountsApi.CurrencyMismatch(accounts[index], account.Currency, currency));
            }

            ledgerIds[index] = account.LedgerId;
        }

        return (ledgerIds, null);
    }

    /// <summary>429: the merchant already has <see cref="ApiOptions.MaxPaymentsInFlightPerMerchant"/> payments
    /// unfinished, and this request's payment is not one of them (a retry after its record was written passes). The
    /// count and the create are two steps, so concurrent requests can pass the cap by as many as run at once: a bound
    /// on abuse, not an exact quota.</summary>
    private static Reply TooManyInFlight(HttpContext context, int cap)
    {
        context.Response.Headers.RetryAfter = InFlightRetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Reply.Problem(StatusCodes.Status429TooManyRequests, ProblemTypes.TooManyPaymentsInFlight, "Too many payments in flight.",
            $"This merchant has {cap} payments not yet finished (including those awaiting review); retry with the same Idempotency-Key after the time in Retry-After.",
            new Dictionary<string, object?> { ["maxPaymentsInFlight"] = cap });
    }

    private const int InFlightRetryAfterSeconds = 2;

    /// <summary>Every invalid field of a payment request, by name.</summary>
    private static Dictionary<string, string> Errors(CreatePaymentRequest request)
    {
        var errors = new Dictionary<string, string>();
        AccountId.TryParse(request.DebtorAccountId, out var debtorId, out var debtorProblem);
        AccountId.TryParse(request.CreditorAccountId, out var creditorId, out var creditorProblem);
        if (debtorProblem is not null)
        {
            errors["debtorAccountId"] = debtorProblem.Replace("An account id", "debtorAccountId", StringComparison.Ordinal);
        }

        if (creditorProblem is not null)
        {
            errors["creditorAccountId"] = creditorProblem.Replace("An account id", "creditorAccountId", StringComparison.Ordinal);
        }

        if (debtorId is not null && debtorId == creditorId)
        {
            errors["creditorAccountId"] = "creditorAccountId must differ from debtorAccountId.";
        }

        Validate.Amount(request.AmountMinor, errors);
        Validate.Currency(request.Currency, errors);
        Validate.Text("reference", request.Reference, MaxReferenceLength, errors);

        return errors;
    }

    /// <summary>A decision takes no fields, but a body sent is read: ignored, {"decision":"reject"} sent to approve
    /// was approved. Four eyes: the decision needs <see cref="ApiScopes.PaymentsApprove"/> and a key other than the one
    /// that created the payment. It is recorded on the payment (who, when, what) before it goes to the saga, once: a
    /// second, different decision is refused, and the same decision from the same key again (a client's retry) is sent
    /// again, which the saga takes at most once.</summary>
    private static async Task<IResult> DecideAsync(string paymentId, bool approve, HttpContext context, PaymentServices services)
    {
        if (await RequestBody.NoFieldsProblemAsync(context) is { } refused)
        {
            return refused.ToResult();
        }

        var principal = ApiKeyMiddleware.PrincipalOf(context);
        var current = ArchivedPayments.IsPaymentIdShape(paymentId) ? await services.CurrentAsync(paymentId, principal.MerchantId, context.RequestAborted) : null;
        if (current is null)
        {
            return Reply.PaymentNotFound(paymentId).ToResult();
        }

        if (await services.AwaitsApprovalUnrecordedAsync(current, context.RequestAborted))
        {
            current = current with { Status = PaymentStatus.AwaitingApproval };
        }

        if (current.CreatedBy(principal.KeyId, principal.Holder))
        {
            return Reply.Problem(StatusCodes.Status403Forbidden, ProblemTypes.SameKeyReview, "A payment is reviewed by another key than the one that created it.",
                $"Payment '{paymentId}' was created with API key {current.CreatedByKeyId ?? "(unrecorded)"}, which this key ({principal.KeyId}) is or was rotated "
                + $"from or to (holder {principal.Holder}); approve or reject it with a reviewer's key.").ToResult();
        }

        var decision = approve ? PaymentReview.Approved : PaymentReview.Rejected;
        if (current.Review is { } earlier && (earlier.DecidedBy != principal.KeyId || earlier.Decision != decision))
        {
            return AlreadyDecided(paymentId, earlier).ToResult();
        }

        if (current.Review is not null && current.Status != PaymentStatus.AwaitingApproval)
        {
            // The same key's same decision again, after the saga took it: a retry of a request whose answer was lost,
            // answered as the first was (202), with the status the payment has now. It used to be 409, as if someone
            // else had decided.
            return Reply.Json(StatusCodes.Status202Accepted, new PaymentAccepted(paymentId, current.Status, Links(paymentId, current.Status))).ToResult();
        }

        if (current.Review is null && current.Status != PaymentStatus.AwaitingApproval)
        {
            return Reply.Problem(StatusCodes.Status409Conflict, ProblemTypes.PaymentNotAwaitingApproval, "The payment is not awaiting approval.",
                $"Payment '{paymentId}' is {current.Status}.").ToResult();
        }

        if (current.Review is null && PastDeadline(paymentId, current, services) is { } late)
        {
            return late.ToResult();
        }

        if (current.Review is null && await RecordReviewAsync(paymentId, new PaymentReview(decision, principal.KeyId, services.Time.GetUtcNow()), services, context.RequestAborted) is { } problem)
        {
            return problem.ToResult();
        }

        await services.Workflows.RaiseApprovalAsync(paymentId, new ApprovalDecision(approve, principal.KeyId), context.RequestAborted);
        // The saga has the decision: the payment no longer waits for a reviewer (it moves money, or fails as rejected).
        // Written even if the reviewer's request is gone by now (bounded by the store's CAS rounds and call timeouts),
        // else the record would show a payment awaiting review while it moves money.
        var after = await services.Records.ChangeAsync(paymentId, record => record.Status == PaymentStatus.AwaitingApproval
            ? record with { Status = PaymentStatus.Pending, UpdatedAt = services.Time.GetUtcNow() }
            : null, CancellationToken.None);
        // The status the decision leaves (the record now says so), not the one it found: awaiting_approval was stale.
        var status = after?.Status ?? PaymentStatus.Pending;
        return Reply.Json(StatusCodes.Status202Accepted, new PaymentAccepted(paymentId, status, Links(paymentId, status))).ToResult();
    }

    /// <summary>The saga's wait ends at the deadline or later: a decision after it, or just before it whose event reached
    /// the saga after its timer (a probe: answered 202, then failed as approval-deadline-passed), was lost. Decisions are
    /// taken until a margin before the deadline, within which the event is delivered (the call's own bound) or fails.</summary>
    private static Reply? PastDeadline(string paymentId, PaymentRecord current, PaymentServices services)
    {
        var (margin, deadline) = (ApiOptions.DecisionMargin(services.ApprovalTimeout), current.CreatedAt + services.ApprovalTimeout);
        return services.Time.GetUtcNow() < deadline - margin ? null
            : Reply.Problem(StatusCodes.Status409Conflict, ProblemTypes.PaymentNotAwaitingApproval, "The payment is not awaiting approval.", // one title per type (a probe)
                $"Payment '{paymentId}' took decisions until {deadline - margin:O}, {margin.TotalSeconds:0.#} s before its deadline; it fails as approval-deadline-passed.");
    }

    internal static PaymentLinks Links(string paymentId, string status) =>
        new($"/v1/payments/{paymentId}",
            status == PaymentStatus.AwaitingApproval ? $"/v1/payments/{paymentId}/approve" : null,
            status == PaymentStatus.AwaitingApproval ? $"/v1/payments/{paymentId}/reject" : null);
}

/// <summary>What the payment endpoints need, and the status refresh they share.</summary>
public sealed class PaymentServices(
    MerchantStore store, PaymentRecordStore records, ILedger ledger, IPaymentWorkflows workflows, TimeProvider time, ApiOptions options, ArchivedPayments archive,
    EtcdConnection etcd, ILogger<PaymentServices> logger)
{
    public ILogger Logger => logger;

    public EtcdConnection Etcd => etcd;

    public ArchivedPayments Archive => archive;

    public MerchantStore Store => store;

    public PaymentRecordStore Records => records;

    public ILedger Ledger => ledger;

    public IPaymentWorkflows Workflows => workflows;

    public TimeProvider Time => time;

    public TimeSpan ApprovalTimeout => options.ApprovalTimeout;

    public int MaxInFlight => options.MaxPaymentsInFlightPerMerchant;

    /// <summary>This replica's estimates of each merchant's payments in flight (a count spared, not a cap loosened).</summary>
    public Limits.InFlightEstimates InFlight { get; } = new(time, options.Replicas);

    /// <summary>The merchant's payment as its record says (null: none, or another merchant's). The saga writes every
    /// status a client sees into the record (awaiting_approval, the outcome), so no read asks the workflow.</summary>
    public async Task<PaymentRecord?> CurrentAsync(string paymentId, string merchantId, CancellationToken cancellationToken) =>
        await records.GetAsync(paymentId, cancellationToken) is { Record: var record } ? VisibleTo(record, merchantId) : null;

    /// <summary>The record if it is <paramref name="merchantId"/>'s payment; null (as if there were none) otherwise.</summary>
    public static PaymentRecord? VisibleTo(PaymentRecord record, string merchantId) => record.Order.MerchantId == merchantId ? record : null;

    /// <summary>Whether the saga waits for a reviewer although the record says pending: only payments that were
    /// waiting when the platform was upgraded to sagas that record it themselves. Asked when a reviewer decides, never
    /// on reads.</summary>
    public async Task<bool> AwaitsApprovalUnrecordedAsync(PaymentRecord record, CancellationToken cancellationToken) =>
        record is { Status: PaymentStatus.Pending, Review: null }
        && await workflows.GetAsync(record.PaymentId, cancellationToken) is { Ended: false, Step: PaymentStep.AwaitingApproval };
}

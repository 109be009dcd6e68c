using Payments.Domain;
using Payments.Orchestrator.Client.Gateway;
using Payments.Orchestrator.Client.Models;
using Payments.ServiceDefaults.Security;

namespace Payments.Orchestrator.Host.Apis;

/// <summary>Internal endpoints through which the API starts, reads and answers payments (Dapr service invocation on
/// Kubernetes; access control lets only the API call them, and so does the service identity check here). A workflow
/// client can only reach its own app's workflows, so the API cannot drive the saga with one of its own.</summary>
internal static class PaymentWorkflowsApi
{
    public static void MapPaymentWorkflowsApi(this IEndpointRouteBuilder app)
    {
        var payments = app.MapGroup("/" + HttpPaymentWorkflows.Route).RequireCallers(ServiceRoles.Api);
        payments.AddEndpointFilter(AnswerEngineAwayAsync);
        payments.MapPost("/", async (PaymentInput input, IPaymentWorkflows workflows, OrchestratorOptions options, TimeProvider time, CancellationToken cancellationToken) =>
        {
            if (InputProblem(input, options, time) is { } problem)
            {
                return Results.Problem(problem, statusCode: StatusCodes.Status400BadRequest, title: "One or more fields are invalid.", type: ProblemTypes.ValidationFailed);
            }

            await workflows.StartAsync(input, cancellationToken);
            return Results.Accepted();
        });
        // The API resumes, rather than starts, a payment whose record it found existing (IPaymentWorkflows.ResumeAsync).
        payments.MapPost("/{paymentId}/resume", async (string paymentId, PaymentInput input, IPaymentWorkflows workflows, OrchestratorOptions options, TimeProvider time, CancellationToken cancellationToken) =>
        {
            if ((InputProblem(input, options, time) ?? (input.Order.PaymentId == paymentId ? null : "The path's payment id is not the order's.")) is { } problem)
            {
                return Results.Problem(problem, statusCode: StatusCodes.Status400BadRequest, title: "One or more fields are invalid.", type: ProblemTypes.ValidationFailed);
            }

            await workflows.ResumeAsync(input, cancellationToken);
            return Results.Accepted();
        });
        payments.MapGet("/{paymentId}", async (string paymentId, IPaymentWorkflows workflows, CancellationToken cancellationToken) =>
            !TransferId.TryParse(paymentId, out _, out var problem)
                ? Results.Problem(problem, statusCode: StatusCodes.Status400BadRequest, title: "One or more fields are invalid.", type: ProblemTypes.ValidationFailed)
                : await workflows.GetAsync(paymentId, cancellationToken) is { } state
                    ? Results.Ok(state)
                    : Results.Problem($"No saga runs or ran for payment '{paymentId}'.", statusCode: StatusCodes.Status404NotFound, title: "Payment not found.", type: ProblemTypes.PaymentNotFound));
        payments.MapPost("/{paymentId}/approval", async (string paymentId, ApprovalWire decision, IPaymentWorkflows workflows, CancellationToken cancellationToken) =>
        {
            // A body without "approved" was read as false: a rejection nobody made.
            if (!TransferId.TryParse(paymentId, out _, out var problem) || decision.Approved is not { } approved)
            {
                return Results.Problem(problem ?? "approved (true or false) is required.", statusCode: StatusCodes.Status400BadRequest, title: "One or more fields are invalid.", type: ProblemTypes.ValidationFailed);
            }

            // The reviewer is the deciding key's id, kept in the saga's history: a 900 KB one was taken (a probe).
            if (decision.Reviewer is { } reviewer && (reviewer.Length > MaxReviewerLength || reviewer.Any(char.IsControl)))
            {
                return Results.Problem($"reviewer is at most {MaxReviewerLength} characters, without control characters.",
                    statusCode: StatusCodes.Status400BadRequest, title: "One or more fields are invalid.", type: ProblemTypes.ValidationFailed);
            }

            // A decision for a saga that does not exist is raised nowhere: 404, as the read says (raised, it was 202 and
            // the development workflow engine retried the orphan event's work item without end); nor for one that ended,
            // which waits for nothing: 409.
            switch (await workflows.GetAsync(paymentId, cancellationToken))
            {
                case null:
                    return Results.Problem($"No saga runs or ran for payment '{paymentId}'.", statusCode: StatusCodes.Status404NotFound, title: "Payment not found.", type: ProblemTypes.PaymentNotFound);
                case { Ended: true }:
                    return Results.Problem($"The saga of payment '{paymentId}' has ended; it waits for no decision.", statusCode: StatusCodes.Status409Conflict, title: "The payment is not awaiting approval.", type: ProblemTypes.PaymentNotAwaitingApproval);
            }

            await workflows.RaiseApprovalAsync(paymentId, new ApprovalDecision(approved, decision.Reviewer), cancellationToken);
            return Results.Accepted();
        });
    }

    /// <summary>The workflow engine away (its sidecar restarting, frozen, or cut off): a 503 the API retries or leaves
    /// to the sweeper, logged as one warning line. It was an unhandled exception with its stack trace and a 500, 34 in
    /// a three-minute outage of the sidecar (a fault probe), the line on-call reads as a defect of ours.</summary>
    private static async ValueTask<object?> AnswerEngineAwayAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        try
        {
            return await next(context);
        }
        catch (Exception exception) when (IsEngineAway(exception) && !context.HttpContext.RequestAborted.IsCancellationRequested)
        {
            context.HttpContext.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("Payments.Orchestrator.Host.Apis")
                .LogWarning("Answered 503: the workflow engine did not answer ({Error})", exception.Message);
            return Results.Problem("The workflow engine is not answering; retry.", statusCode: StatusCodes.Status503ServiceUnavailable,
                title: "The service is temporarily unavailable.", type: ProblemTypes.ServiceUnavailable);
        }
    }

    private static bool IsEngineAway(Exception exception) =>
        exception is HttpRequestException or TimeoutException
        || exception is Grpc.Core.RpcException
        {
            StatusCode: Grpc.Core.StatusCode.Unavailable or Grpc.Core.StatusCode.DeadlineExceeded or Grpc.Core.StatusCode.Cancelled
                or Grpc.Core.StatusCode.Internal or Grpc.Core.StatusCode.ResourceExhausted,
        };

    /// <summary>Why the API's input cannot start a saga, or null: its order (<see cref="OrderProblem"/>), and the wait
    /// for a reviewer, which is the orchestrator's to bound (its sweeper's deadlines follow from it).</summary>
    private static string? InputProblem(PaymentInput? input, OrchestratorOptions options, TimeProvider time) =>
        input is null ? "A body is required."
        : OrderProblem(input.Order) is { } problem ? problem
        : input.ApprovalTimeout <= TimeSpan.Zero || input.ApprovalTimeout > options.ApprovalTimeout ? $"approvalTimeout must be positive and at most {options.ApprovalTimeout}."
        : input.CreatedAt is { } created && (created < time.GetUtcNow() - MaxCreatedAgo || created > time.GetUtcNow() + MaxCreatedAhead)
            ? $"createdAt must be within the last {MaxCreatedAgo.TotalDays:0} days and at most {MaxCreatedAhead.TotalMinutes:0} minutes ahead."
        : null;

    /// <summary>How old a payment the API starts or resumes may say it is: its records live 8 days, and its transfers
    /// name this time (one the ledger cannot take, the year 1, was retried as a fault without end, the payment pending).</summary>
    private static readonly TimeSpan MaxCreatedAgo = TimeSpan.FromDays(30);

    /// <summary>Another replica's clock a little ahead, as the ledger allows transfers issued ahead.</summary>
    private static readonly TimeSpan MaxCreatedAhead = TimeSpan.FromMinutes(5);

    /// <summary>Longest reference accepted: the API's 140 characters of up to 4 UTF-16 units each.</summary>
    private const int MaxReferenceUnits = 560;

    /// <summary>Why the API's order cannot start a saga, or null. The API checks all of it first; checked again here
    /// because no caller is trusted with the orchestrator's input (a saga started from a bad order retries risk's
    /// refusals until it fails, and an order without a body failed with a 500).</summary>
    private static string? OrderProblem(PaymentOrder? order)
    {
        if (order is null)
        {
            return "order is required.";
        }

        if (!TransferId.TryParse(order.PaymentId, out _, out var problem))
        {
            return problem;
        }

        if (string.IsNullOrWhiteSpace(order.MerchantId) || order.MerchantId.Length > 128 || order.MerchantId.Any(char.IsControl))
        {
            return "order.merchantId is required: up to 128 characters, no control characters.";
        }

        if (!AccountId.TryParseLedger(order.DebtorAccountId, out var debtor, out problem) || !AccountId.TryParseLedger(order.CreditorAccountId, out var creditor, out problem))
        {
            return problem;
        }

        return debtor == creditor ? "order's debtor and creditor must differ."
            : order.AmountMinor <= 0 ? "order.amountMinor must be positive."
            : !Currency.TryFromCode(order.Currency, out _) ? "order.currency must be an ISO 4217 code."
            : order.Reference is { Length: > MaxReferenceUnits } ? $"order.reference is at most {MaxReferenceUnits} UTF-16 units."
            : null;
    }

    /// <summary>The approval endpoint's body: <see cref="ApprovalDecision"/> with the decision required.</summary>
    internal sealed record ApprovalWire(bool? Approved, string? Reviewer);

    /// <summary>A reviewer's name at most: the API sends the deciding key's id (some 30 characters).</summary>
    public const int MaxReviewerLength = 128;
}

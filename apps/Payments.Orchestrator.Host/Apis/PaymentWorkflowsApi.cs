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
        payments.MapPost("/", async (PaymentInput input, IPaymentWorkflows workflows, OrchestratorOptions options, CancellationToken cancellationToken) =>
        {
            if (!TransferId.TryParse(input.PaymentId, out _, out var problem))
            {
                return Results.Problem(problem, statusCode: StatusCodes.Status400BadRequest, type: ProblemTypes.ValidationFailed);
            }

            // The wait for a reviewer is the orchestrator's to bound: its sweeper's deadlines follow from it.
            if (input.ApprovalTimeout <= TimeSpan.Zero || input.ApprovalTimeout > options.ApprovalTimeout)
            {
                return Results.Problem($"approvalTimeout must be positive and at most {options.ApprovalTimeout}.",
                    statusCode: StatusCodes.Status400BadRequest, type: ProblemTypes.ValidationFailed);
            }

            await workflows.StartAsync(input, cancellationToken);
            return Results.Accepted();
        });
        payments.MapGet("/{paymentId}", async (string paymentId, IPaymentWorkflows workflows, CancellationToken cancellationToken) =>
            await workflows.GetAsync(paymentId, cancellationToken) is { } state ? Results.Ok(state) : Results.NotFound());
        payments.MapPost("/{paymentId}/approval", async (string paymentId, ApprovalDecision decision, IPaymentWorkflows workflows, CancellationToken cancellationToken) =>
        {
            await workflows.RaiseApprovalAsync(paymentId, decision, cancellationToken);
            return Results.Accepted();
        });
    }
}

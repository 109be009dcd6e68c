using Payments.Risk.Contracts;
using Payments.Risk.Core;
using Payments.ServiceDefaults;
using Payments.ServiceDefaults.Security;

namespace Payments.Risk.Extensions;

public static class RiskServiceExtensions
{
    /// <summary>The rules with the configured review threshold (<c>Payments:ReviewThresholdMinor</c>) and blocklist
    /// (<c>Payments:BlockedAccounts</c>).</summary>
    public static void AddRiskService(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddServiceIdentity();
        var reviewThreshold = builder.Configuration.GetValue("Payments:ReviewThresholdMinor", RiskPolicy.Default.ReviewThresholdMinor);
        var blocked = builder.Configuration.GetSection("Payments:BlockedAccounts").Get<string[]>() ?? [];
        builder.Services.AddSingleton<IRiskAssessor>(new RiskEngine(
            RiskPolicy.Default with { ReviewThresholdMinor = reviewThreshold, BlockedAccounts = new HashSet<string>(blocked, StringComparer.Ordinal) },
            TimeProvider.System));
    }

    public static void UseRiskService(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.UseServiceIdentity();
        // Internal: only the saga may assess (each assessment counts towards the account's velocity); on Kubernetes
        // Dapr access control says the same.
        app.MapPost("/" + RiskRoutes.Assess, async (RiskRequestWire body, IRiskAssessor risk, CancellationToken cancellationToken) =>
            body.ToInput(out var problem) is { } input
                ? Results.Ok(await risk.AssessAsync(input, cancellationToken))
                : Results.Problem(problem, statusCode: StatusCodes.Status400BadRequest))
            .RequireCallers(ServiceRoles.Orchestrator);
        app.MapHealthEndpoints(); // no dependency to check: the rules and the velocity window are in memory
        app.MapMetricsEndpoint();
    }
}

using Payments.Risk.Contracts;
using Payments.Risk.Core;
using Payments.ServiceDefaults;

namespace Payments.Risk.Extensions;

public static class RiskServiceExtensions
{
    /// <summary>The rules with the configured review threshold (<c>Payments:ReviewThresholdMinor</c>) and blocklist
    /// (<c>Payments:BlockedAccounts</c>).</summary>
    public static void AddRiskService(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var reviewThreshold = builder.Configuration.GetValue("Payments:ReviewThresholdMinor", RiskPolicy.Default.ReviewThresholdMinor);
        var blocked = builder.Configuration.GetSection("Payments:BlockedAccounts").Get<string[]>() ?? [];
        builder.Services.AddSingleton<IRiskAssessor>(new RiskEngine(
            RiskPolicy.Default with { ReviewThresholdMinor = reviewThreshold, BlockedAccounts = new HashSet<string>(blocked, StringComparer.Ordinal) },
            TimeProvider.System));
    }

    public static void UseRiskService(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        // Internal: on Kubernetes only the orchestrator may invoke it (Dapr access control).
        app.MapPost("/" + RiskRoutes.Assess, async (RiskRequestWire body, IRiskAssessor risk, CancellationToken cancellationToken) =>
            body.ToInput(out var problem) is { } input
                ? Results.Ok(await risk.AssessAsync(input, cancellationToken))
                : Results.Problem(problem, statusCode: StatusCodes.Status400BadRequest));
        app.MapHealthEndpoints(); // no dependency to check: the rules and the velocity window are in memory
    }
}

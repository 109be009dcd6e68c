using Payments.Risk.Core;
using Payments.ServiceDefaults;

var builder = WebApplication.CreateSlimBuilder(args);
builder.AddServiceDefaults("payments-risk");
var reviewThreshold = builder.Configuration.GetValue("Payments:ReviewThresholdMinor", RiskPolicy.Default.ReviewThresholdMinor);
var blocked = builder.Configuration.GetSection("Payments:BlockedAccounts").Get<string[]>() ?? [];
builder.Services.AddSingleton<IRiskAssessor>(new RiskEngine(
    RiskPolicy.Default with { ReviewThresholdMinor = reviewThreshold, BlockedAccounts = new HashSet<string>(blocked, StringComparer.Ordinal) },
    TimeProvider.System));

var app = builder.Build();
// Internal: on Kubernetes only the orchestrator may invoke it (Dapr access control).
app.MapPost("/" + HttpRiskAssessor.AssessRoute, async (RiskRequestWire body, IRiskAssessor risk, CancellationToken cancellationToken) =>
    body.ToInput(out var problem) is { } input
        ? Results.Ok(await risk.AssessAsync(input, cancellationToken))
        : Results.Problem(problem, statusCode: StatusCodes.Status400BadRequest));
app.MapHealthEndpoints(); // no dependency to check: the rules and the velocity window are in memory
await app.RunAsync();

using Payments.Domain;
using Payments.Risk.Contracts;
using Payments.Risk.Core;
using Payments.ServiceDefaults;
using Payments.ServiceDefaults.Security;

namespace Payments.Risk.Extensions;

public static class RiskServiceExtensions
{
    /// <summary>The rules (<see cref="PolicyFrom"/>), with the service's identity.</summary>
    public static void AddRiskService(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddServiceIdentity();
        var policy = PolicyFrom(builder.Configuration); // at start-up: a bad setting stops it, naming the setting
        builder.Services.AddSingleton<IRiskAssessor>(provider => new RiskEngine(policy, provider.GetService<TimeProvider>() ?? TimeProvider.System));
    }

    /// <summary>The rules with the configured review threshold (<c>Payments:ReviewThresholdMinor</c>), the amount above
    /// which a payment is rejected (<c>Payments:RejectAboveMinor</c>; it was fixed at 10,000,000, so with the API's
    /// default maximum of 10^10 every larger payment was accepted, then failed, and no setting changed it), velocity limits
    /// per debtor account (<c>Payments:VelocityMaxCount</c>, <c>Payments:VelocityMaxSumMinor</c> over
    /// <c>Payments:VelocityWindow</c>) and blocklist (<c>Payments:BlockedAccounts</c>); unset ones are
    /// <see cref="RiskPolicy.Default"/>'s. A velocity setting that is not positive stops the start: a limit of zero
    /// would send every payment to a person; so does a count the engine cannot reach (it remembers
    /// <see cref="RiskEngine.MaxRememberedPerAccount"/> payments per account: the rule would never fire), and a blocklist
    /// entry that is no ledger account id (a typo would block nothing, unnoticed).</summary>
    public static RiskPolicy PolicyFrom(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var defaults = RiskPolicy.Default;
        var blocked = configuration.GetSection("Payments:BlockedAccounts").Get<string[]>() ?? [];
        foreach (var entry in blocked)
        {
            if (!AccountId.TryParseLedger(entry, out _, out var problem))
            {
                throw new InvalidOperationException($"Payments:BlockedAccounts has '{entry}', which is no ledger account id ({problem}).");
            }
        }

        var maxCount = Positive(configuration.GetValue("Payments:VelocityMaxCount", defaults.VelocityMaxCount), "Payments:VelocityMaxCount");
        if (maxCount >= RiskEngine.MaxRememberedPerAccount)
        {
            throw new InvalidOperationException(
                $"Payments:VelocityMaxCount is {maxCount}; use at most {RiskEngine.MaxRememberedPerAccount - 1} (the payments one account's window remembers, less one).");
        }

        var policy = defaults with
        {
            ReviewThresholdMinor = configuration.GetValue("Payments:ReviewThresholdMinor", defaults.ReviewThresholdMinor),
            RejectAboveMinor = Positive(configuration.GetValue("Payments:RejectAboveMinor", defaults.RejectAboveMinor), "Payments:RejectAboveMinor"),
            VelocityMaxCount = maxCount,
            VelocityMaxSumMinor = Positive(configuration.GetValue("Payments:VelocityMaxSumMinor", defaults.VelocityMaxSumMinor), "Payments:VelocityMaxSumMinor"),
            VelocityWindow = Positive(configuration.GetValue("Payments:VelocityWindow", defaults.VelocityWindow), "Payments:VelocityWindow"),
            BlockedAccounts = new HashSet<string>(blocked, StringComparer.Ordinal),
        };
        return policy with { Currencies = CurrencyAmounts(configuration, policy) };
    }

    /// <summary>The amount limits of single currencies (<c>Payments:RiskCurrencies:{CODE}:ReviewThresholdMinor</c>,
    /// <c>…:RejectAboveMinor</c>, <c>…:VelocityMaxSumMinor</c>); a field left out takes the general setting. A code that
    /// is not an active ISO 4217 currency, or an amount that is not positive, stops the start naming the setting: a
    /// typo would otherwise leave that currency on the general limits unnoticed.</summary>
    private static Dictionary<string, RiskAmounts> CurrencyAmounts(IConfiguration configuration, RiskPolicy general)
    {
        var amounts = new Dictionary<string, RiskAmounts>(StringComparer.Ordinal);
        foreach (var section in configuration.GetSection("Payments:RiskCurrencies").GetChildren())
        {
            if (!Payments.Domain.Currency.TryFromCode(section.Key, out var currency))
            {
                throw new InvalidOperationException($"Payments:RiskCurrencies:{section.Key} names no active ISO 4217 currency (e.g. JPY).");
            }

            // Only what is set here is checked: a field left out is the general setting, whatever the operator chose for it.
            long Amount(string field, long fallback) =>
                section.GetValue<long?>(field) is { } value ? Positive(value, $"Payments:RiskCurrencies:{section.Key}:{field}") : fallback;
            amounts[currency.Code] = new RiskAmounts(
                Amount(nameof(RiskAmounts.ReviewThresholdMinor), general.ReviewThresholdMinor),
                Amount(nameof(RiskAmounts.RejectAboveMinor), general.RejectAboveMinor),
                Amount(nameof(RiskAmounts.VelocityMaxSumMinor), general.VelocityMaxSumMinor));
        }

        return amounts;
    }

    private static T Positive<T>(T value, string setting)
        where T : IComparable<T> =>
        value.CompareTo(default) > 0 ? value : throw new InvalidOperationException($"{setting} must be positive; it is {value}.");

    public static void UseRiskService(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.UseServiceIdentity();
        // Internal: only the saga may assess (each assessment counts towards the account's velocity); on Kubernetes
        // Dapr access control says the same.
        app.MapPost("/" + RiskRoutes.Assess, async (RiskRequestWire body, IRiskAssessor risk, CancellationToken cancellationToken) =>
            body.ToInput(out var problem) is { } input
                ? Results.Ok(await risk.AssessAsync(input, cancellationToken))
                : Results.Problem(problem, statusCode: StatusCodes.Status400BadRequest, title: "One or more fields are invalid.", type: ProblemTypes.ValidationFailed))
            .RequireCallers(ServiceRoles.Orchestrator);
        app.MapHealthEndpoints(); // no dependency to check: the rules and the velocity window are in memory
        app.MapMetricsEndpoint();
    }
}

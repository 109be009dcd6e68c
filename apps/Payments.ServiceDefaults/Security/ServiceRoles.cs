namespace Payments.ServiceDefaults.Security;

/// <summary>The apps that call one another, by role. An endpoint names the roles it serves; the role of a caller is
/// found from its Dapr app id (<see cref="ServiceIdentityOptions.Callers"/>).</summary>
public static class ServiceRoles
{
    public const string Api = "api";
    public const string Orchestrator = "orchestrator";
    public const string Ledger = "ledger";
    public const string Risk = "risk";
    public const string Failover = "failover";
}

namespace Payments.Ledger.Contracts;

/// <summary>The ledger service's internal routes, shared by the service and its client.</summary>
public static class LedgerRoutes
{
    /// <summary>Every route of the ledger service's API sits under this prefix (relative to the invocation base URL).</summary>
    public const string Prefix = "ledger/v1/";

    /// <summary>POST <see cref="SetOverdraftWire"/>: sets a customer account's overdraft limit (the API only).</summary>
    public static string Overdraft(string accountId) => Prefix + "accounts/" + Uri.EscapeDataString(accountId) + "/overdraft";
}

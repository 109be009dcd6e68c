using Payments.Ledger.Core;
using Payments.Ledger.Core.Invariants;
using Spectre.Console;

namespace Payments.Local;

/// <summary>The ledger's invariant checks (<see cref="LedgerInvariants"/>) over what etcd holds, printed as a table.</summary>
public static class LedgerReport
{
    /// <summary>Checks and prints every invariant; true when all hold.</summary>
    public static async Task<bool> PrintAsync(EtcdLedger ledger, CancellationToken cancellationToken)
    {
        var (_, checks) = await LedgerInvariants.CheckAsync(ledger, cancellationToken);
        var table = new Table().Title("Ledger invariants").AddColumns("check", "result", "detail");
        foreach (var check in checks)
        {
            table.AddRow(Markup.Escape(check.Name), check.Holds ? "[green]holds[/]" : "[red]BROKEN[/]", Markup.Escape(check.Detail));
        }

        AnsiConsole.Write(table);
        return checks.All(check => check.Holds);
    }
}

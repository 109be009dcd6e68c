using Payments.Local.Hosting;
using Spectre.Console;

namespace Payments.Local;

/// <summary>The system's checks (<see cref="SystemChecks"/>: the ledger's invariants, every status against the journal)
/// over what etcd holds, printed as a table.</summary>
public static class LedgerReport
{
    /// <summary>Checks and prints every invariant; true when all hold.</summary>
    public static async Task<bool> PrintAsync(LocalSystem system, CancellationToken cancellationToken)
    {
        var (checks, _) = await SystemChecks.RunAsync(system, cancellationToken);
        var table = new Table().Title("Invariants").AddColumns("check", "result", "detail");
        foreach (var check in checks)
        {
            table.AddRow(Markup.Escape(check.Name), check.Holds ? "[green]holds[/]" : "[red]BROKEN[/]", Markup.Escape(check.Detail));
        }

        AnsiConsole.Write(table);
        return checks.All(check => check.Holds);
    }
}

using Payments.Local;
using Spectre.Console;

// Development and tests only: this runs everything on one machine with a throw-away etcd cluster.
AnsiConsole.MarkupLine("[yellow]DaprPayments local mode — for development only, not for production.[/]");
using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, eventArgs) =>
{
    eventArgs.Cancel = true; // stop cleanly: the cluster's processes and directories are removed on the way out
    stop.Cancel();
};
using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(
    System.Runtime.InteropServices.PosixSignal.SIGTERM, context =>
    {
        context.Cancel = true;
        stop.Cancel();
    });

var options = DemoOptions.Parse(args);
if (options is null)
{
    AnsiConsole.WriteLine(DemoOptions.Usage);
    return 2;
}

try
{
    return await LedgerDemo.RunAsync(options, stop.Token) ? 0 : 1;
}
catch (OperationCanceledException) when (stop.IsCancellationRequested)
{
    AnsiConsole.MarkupLine("[yellow]Stopped.[/]");
    return 130;
}

using Payments.Local;
using Payments.Local.Hosting;
using Spectre.Console;

// Development and tests only: everything on one machine, with a throw-away etcd cluster and an in-memory workflow engine.
if (Console.IsOutputRedirected)
{
    AnsiConsole.Profile.Width = 120; // logs and CI: wide enough that the summary tables do not wrap
}

AnsiConsole.MarkupLine("[yellow]DaprPayments local mode — for development only, not for production.[/]");
using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, eventArgs) =>
{
    eventArgs.Cancel = true; // stop cleanly: every child process and the cluster's data are removed on the way out
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
    return args is ["--help"] or ["-h"] ? 0 : 2; // asked for: success; a wrong option: a usage error
}

try
{
    await using var system = await LocalSystem.StartAsync(
        options.ApiPort, message => AnsiConsole.MarkupLineInterpolated($"[grey]{message}[/]"), stop.Token, supervise: true);
    if (options.Serve)
    {
        await ServeMode.RunAsync(system, stop.Token);
        return 0;
    }

    return await ApiDemo.RunAsync(system, options, stop.Token) ? 0 : 1;
}
catch (OperationCanceledException) when (stop.IsCancellationRequested)
{
    AnsiConsole.MarkupLine("[yellow]Stopped; all processes and data removed.[/]");
    return 130;
}

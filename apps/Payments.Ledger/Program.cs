using Payments.Ledger.Extensions;
using Payments.ServiceDefaults;

var builder = WebApplication.CreateSlimBuilder(args);
// The same image runs etcd's storage maintenance as a process of its own (Payments:EtcdMaintenance=Only), so the
// root-role certificate it needs lives in one small pod and not in the ledger's.
var maintenanceOnly = builder.IsEtcdMaintenanceOnly();
builder.AddServiceDefaults(maintenanceOnly ? "payments-etcd-maintenance" : "payments-ledger");
if (maintenanceOnly)
{
    builder.AddEtcdMaintenanceOnly();
}
else
{
    await builder.AddLedgerServiceAsync();
}

var app = builder.Build();
if (maintenanceOnly)
{
    app.UseEtcdMaintenanceOnly();
}
else
{
    app.UseLedgerService();
}

await app.RunAsync();

/// <summary>Internal: test projects compose this host through <c>AddLedgerServiceAsync</c>, never through its Program.</summary>
internal partial class Program;

using Payments.Ledger.Extensions;
using Payments.ServiceDefaults;

var builder = WebApplication.CreateSlimBuilder(args);
builder.AddServiceDefaults("payments-ledger");
await builder.AddLedgerServiceAsync();

var app = builder.Build();
app.UseLedgerService();
await app.RunAsync();

/// <summary>Internal: test projects compose this host through <c>AddLedgerServiceAsync</c>, never through its Program.</summary>
internal partial class Program;

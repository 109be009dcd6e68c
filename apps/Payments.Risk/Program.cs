using Payments.Risk.Extensions;
using Payments.ServiceDefaults;

var builder = WebApplication.CreateSlimBuilder(args);
builder.AddServiceDefaults("payments-risk");
builder.AddRiskService();

var app = builder.Build();
app.UseRiskService();
await app.RunAsync();

/// <summary>Internal: test projects reference several app hosts, and each would otherwise export a public Program.</summary>
internal partial class Program;

using Payments.Failover.Extensions;
using Payments.ServiceDefaults;

var builder = WebApplication.CreateSlimBuilder(args);
builder.AddServiceDefaults("payments-failover");
await builder.AddFailoverServiceAsync();

var app = builder.Build();
app.UseFailoverService();
await app.RunAsync();

/// <summary>Visible to the tests (WebApplicationFactory).</summary>
public partial class Program;

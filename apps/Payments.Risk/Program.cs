using Payments.Risk.Extensions;
using Payments.ServiceDefaults;

var builder = WebApplication.CreateSlimBuilder(args);
builder.AddServiceDefaults("payments-risk");
builder.AddRiskService();

var app = builder.Build();
app.UseRiskService();
await app.RunAsync();

using Payments.Edge.Extensions;
using Payments.ServiceDefaults;

var builder = WebApplication.CreateSlimBuilder(args);
builder.AddServiceDefaults("payments-edge");
builder.IgnoreTraceContextFromOutside();
builder.AddEdge();

var app = builder.Build();
app.UseEdge();
await app.RunAsync();

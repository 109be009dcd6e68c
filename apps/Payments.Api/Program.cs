using Payments.Api.Extensions;
using Payments.ServiceDefaults;

var builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults("payments-api");
builder.IgnoreTraceContextFromOutside();
builder.AddPaymentsApi();

var app = builder.Build();
app.UsePaymentsApi();
await app.RunAsync();

/// <summary>Visible to functional tests.</summary>
public partial class Program;

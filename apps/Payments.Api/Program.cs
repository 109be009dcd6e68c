using Payments.Api.Extensions;

var builder = WebApplication.CreateBuilder(args);
builder.AddPaymentsApi();

var app = builder.Build();
app.UsePaymentsApi();
await app.RunAsync();

/// <summary>Visible to functional tests.</summary>
public partial class Program;

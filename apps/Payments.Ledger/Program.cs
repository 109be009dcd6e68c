using Payments.Etcd;
using Payments.Ledger.Apis;
using Payments.Ledger.Core;
using Payments.Ledger.Core.Expiry;
using Payments.ServiceDefaults;

var builder = WebApplication.CreateSlimBuilder(args);
builder.AddServiceDefaults("payments-ledger");
var etcdEndpoints = builder.Configuration["Payments:EtcdEndpoints"] ?? "http://127.0.0.1:2379";
var keyPrefix = builder.Configuration["Payments:KeyPrefix"] ?? "/daprpayments/";
builder.Services.AddSingleton(TimeProvider.System);
builder.Services.AddSingleton(_ => EtcdConnection.Create(etcdEndpoints));
builder.Services.AddSingleton(provider => new EtcdLedger(
    provider.GetRequiredService<EtcdConnection>(), keyPrefix + "ledger/", provider.GetRequiredService<TimeProvider>(),
    provider.GetRequiredService<ILoggerFactory>().CreateLogger<EtcdLedger>()));
builder.Services.AddHostedService<HoldExpiryService>();

var app = builder.Build();
app.MapLedgerApi();
app.MapHealthEndpoints((services, cancellationToken) => services.GetRequiredService<EtcdConnection>().IsReachableAsync(cancellationToken));
await app.RunAsync();

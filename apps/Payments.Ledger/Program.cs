using Etcdserverpb;
using Payments.Etcd;
using Payments.Ledger;
using Payments.Ledger.Apis;
using Payments.Ledger.Core;
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
app.MapGet("/healthz", () => Results.Text("ok"));
app.MapGet("/readyz", async (EtcdConnection etcd, CancellationToken cancellationToken) =>
{
    try
    {
        await EtcdConnection.CallAsync(
            token => etcd.Kv.RangeAsync(new RangeRequest { Key = EtcdBytes.Key(keyPrefix + "readyz"), Limit = 1 }, cancellationToken: token), cancellationToken);
        return Results.Text("ready");
    }
    catch (Exception exception) when (exception is Grpc.Core.RpcException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
    {
        return Results.Text("etcd unreachable", statusCode: StatusCodes.Status503ServiceUnavailable);
    }
});
await app.RunAsync();

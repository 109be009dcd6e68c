using Payments.Etcd;
using Payments.Ledger;
using Payments.Ledger.Apis;
using Payments.Ledger.Core;
using Payments.Ledger.Core.Expiry;
using Payments.ServiceDefaults;

var builder = WebApplication.CreateSlimBuilder(args);
builder.AddServiceDefaults("payments-ledger");
var etcdEndpoints = builder.Configuration["Payments:EtcdEndpoints"] ?? "http://127.0.0.1:2379";
var keyPrefix = builder.Configuration["Payments:KeyPrefix"] ?? "/daprpayments/";
// A region of a two-region deployment (Region:Name set) fences every write with the epoch its etcd mirrors
// (ARCHITECTURE §2, invariants 5 and 6); a single-region or local deployment writes unfenced.
var regional = !string.IsNullOrWhiteSpace(builder.Configuration["Region:Name"]);
builder.Services.AddSingleton(TimeProvider.System);
builder.Services.AddSingleton(_ => EtcdConnection.Create(etcdEndpoints));
builder.Services.AddSingleton(provider => new RegionEpochWatcher(provider.GetRequiredService<EtcdConnection>(), keyPrefix, provider.GetRequiredService<TimeProvider>()));
builder.Services.AddSingleton(provider =>
{
    var watcher = provider.GetRequiredService<RegionEpochWatcher>();
    return new EtcdLedger(
        provider.GetRequiredService<EtcdConnection>(), keyPrefix + "ledger/", provider.GetRequiredService<TimeProvider>(),
        provider.GetRequiredService<ILoggerFactory>().CreateLogger<EtcdLedger>(), regional ? watcher.CurrentFence : null);
});
builder.Services.AddHostedService<HoldExpiryService>();
var replication = (builder.Configuration.GetSection("Replication").Get<ReplicationOptions>() ?? new ReplicationOptions()).Validate();
await builder.AddJournalReplicationAsync(replication, keyPrefix);
if (regional)
{
    builder.Services.AddHostedService<RegionEpochWatcherService>();
}

var app = builder.Build();
app.MapLedgerApi();
// Readiness: etcd reachable and, in a region, the region active (a standby's ledger takes no traffic).
app.MapHealthEndpoints(async (services, cancellationToken) =>
    await services.GetRequiredService<EtcdConnection>().IsReachableAsync(cancellationToken)
    && (!regional || services.GetRequiredService<RegionEpochWatcher>().IsWritable));
await app.RunAsync();

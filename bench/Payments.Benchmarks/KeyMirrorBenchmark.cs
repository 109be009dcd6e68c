using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Etcdserverpb;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;
using Payments.Etcd;
using Payments.LocalCluster;
using Payments.Merchants;

namespace Payments.Benchmarks;

/// <summary><c>key-mirror</c>: what holding every live API key costs an API replica (MerchantStore's mirror) at
/// <see cref="MerchantStore.MaxCachedKeys"/> keys: the time its load takes before the replica is ready, etcd's CPU for it,
/// and the replica's memory per key (managed heap after a full collection, before and after the load). Key records are
/// written as the store writes them (JSON, three scopes), 20 per merchant.</summary>
public static class KeyMirrorBenchmark
{
    private const int PutsPerTxn = 100;
    private const int KeysPerMerchant = 20;
    private static readonly TimeSpan LoadBound = TimeSpan.FromMinutes(5);

    public static async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        await using var cluster = await LocalEtcdCluster.StartAsync(1, Console.WriteLine, cancellationToken);
        using var etcd = cluster.ConnectAsRoot();
        const string Prefix = "/key-mirror-bench/api/";
        var keys = MerchantStore.MaxCachedKeys;
        var json = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        Console.WriteLine($"==> writing {keys:N0} key records…");
        for (var written = 0; written < keys; written += PutsPerTxn)
        {
            var txn = new TxnRequest();
            for (var index = written; index < written + PutsPerTxn; index++)
            {
                var record = new ApiKeyRecord($"key_{index:x16}", $"merchant-{index / KeysPerMerchant:D6}", ApiKeyModes.Test, "abcd",
                    [ApiScopes.PaymentsRead, ApiScopes.PaymentsWrite, ApiScopes.AccountsRead], DateTimeOffset.UtcNow, null);
                txn.Success.Add(new RequestOp
                {
                    RequestPut = new PutRequest
                    {
                        Key = EtcdBytes.Key(Prefix + "merchant-keys/" + MerchantStore.Hash($"dp_test_{index}")),
                        Value = ByteString.CopyFrom(JsonSerializer.SerializeToUtf8Bytes(record, json)),
                    },
                });
            }

            await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(txn, cancellationToken: token), cancellationToken);
        }

        var heapBefore = GC.GetTotalMemory(forceFullCollection: true);
        var etcdBefore = SystemCpu.DescendantSecondsByProgram().GetValueOrDefault("etcd");
        var store = new MerchantStore(etcd, Prefix);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var loading = Stopwatch.StartNew();
        var running = store.RunInvalidationAsync(NullLogger.Instance, stop.Token);
        while (!store.IsMirroring)
        {
            if (loading.Elapsed > LoadBound)
            {
                throw new TimeoutException($"The mirror did not load within {LoadBound.TotalMinutes} min.");
            }

            await Task.Delay(5, cancellationToken);
        }

        var loadMs = loading.Elapsed.TotalMilliseconds;
        var etcdMs = (SystemCpu.DescendantSecondsByProgram().GetValueOrDefault("etcd") - etcdBefore) * 1000;
        var bytesPerKey = (GC.GetTotalMemory(forceFullCollection: true) - heapBefore) / (double)keys;
        var held = store.IsCached("dp_test_0") && store.IsCached($"dp_test_{keys - 1}");
        await stop.CancelAsync();
        await running;
        Console.WriteLine($"{keys:N0} keys held: {held}; load {loadMs:F0} ms, etcd {etcdMs:F0} CPU-ms, {bytesPerKey:F0} bytes per key");
        Console.WriteLine("RESULT " + string.Create(CultureInfo.InvariantCulture,
            $"{{\"keys\":{keys},\"held\":{(held ? "true" : "false")},\"loadMs\":{loadMs:F0},\"etcdCpuMs\":{etcdMs:F0},\"bytesPerKey\":{bytesPerKey:F0}}}"));
        return held ? 0 : 1;
    }
}

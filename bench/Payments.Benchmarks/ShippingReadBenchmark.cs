using System.Globalization;
using Etcdserverpb;
using Google.Protobuf;
using Payments.Etcd;
using Payments.LocalCluster;

namespace Payments.Benchmarks;

/// <summary><c>shipping-reads</c>: what a shipping round's question "what changed after the head?" costs etcd as the
/// journal grows, asked the way rounds asked it before (a range with <c>MinModRevision</c>, a limit of a page) and the
/// way they ask it now (an open change feed, asked how far it is complete), when nothing changed. etcd's CPU from
/// /proc (10 ms ticks), per call, over <see cref="RangeCalls"/> ranges and <see cref="FeedCalls"/> feed refreshes at each
/// size; one member, so the figures are one member's work. Beside them, what a page of 50 from the first key costs when
/// its range runs to the prefix's end (how <c>GET /v1/events</c> read a page before) and when it ends 1,000 keys on (a
/// window, as it reads now): etcd counts every key a range spans, whatever its limit.</summary>
public static class ShippingReadBenchmark
{
    private const int RangeCalls = 20;
    private const int FeedCalls = 500;
    private const int PageCalls = 100;
    private const int PageSize = 50;
    private const int WindowKeys = 1_000;
    private const int PutsPerTxn = 100;
    private static readonly int[] Sizes = [10_000, 50_000, 200_000];

    public static async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        await using var cluster = await LocalEtcdCluster.StartAsync(1, Console.WriteLine, cancellationToken);
        using var etcd = cluster.ConnectAsRoot();
        const string Prefix = "/shipping-bench/ledger/xfer/";
        var value = ByteString.CopyFrom(new byte[300]); // about a transfer record's size
        var written = 0;
        var results = new List<string>();
        await using var feed = new EtcdChangeFeed(etcd, Prefix);
        foreach (var size in Sizes)
        {
            Console.WriteLine($"==> {size:N0} keys: writing…");
            while (written < size)
            {
                var txn = new TxnRequest();
                for (var index = 0; index < PutsPerTxn; index++)
                {
                    txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = ByteString.CopyFromUtf8($"{Prefix}{written + index:D9}"), Value = value } });
                }

                await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(txn, cancellationToken: token), cancellationToken);
                written += PutsPerTxn;
            }

            var head = (await EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8(Prefix), CountOnly = true }, cancellationToken: token), cancellationToken)).Header.Revision;
            var range = new RangeRequest
            {
                Key = EtcdBytes.Key(Prefix), RangeEnd = EtcdBytes.PrefixEnd(Prefix), MinModRevision = head + 1,
                SortTarget = RangeRequest.Types.SortTarget.Mod, SortOrder = RangeRequest.Types.SortOrder.Ascend, Limit = 256,
            };
            var rangeMs = await EtcdCpuPerCallAsync(RangeCalls, () => EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(range, cancellationToken: token), cancellationToken));
            await feed.RefreshAsync(head, TimeSpan.FromSeconds(5), cancellationToken); // opened and caught up before it is measured
            var feedMs = await EtcdCpuPerCallAsync(FeedCalls, () => feed.RefreshAsync(head, TimeSpan.FromSeconds(5), cancellationToken));
            var page = new RangeRequest { Key = EtcdBytes.Key(Prefix), RangeEnd = EtcdBytes.PrefixEnd(Prefix), Limit = PageSize };
            var pageMs = await EtcdCpuPerCallAsync(PageCalls, () => EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(page, cancellationToken: token), cancellationToken));
            var window = new RangeRequest { Key = EtcdBytes.Key(Prefix), RangeEnd = EtcdBytes.Key($"{Prefix}{WindowKeys:D9}"), Limit = PageSize };
            var windowMs = await EtcdCpuPerCallAsync(PageCalls, () => EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(window, cancellationToken: token), cancellationToken));
            Console.WriteLine($"{size,9:N0} keys: MinModRevision range {rangeMs,7:F2} etcd CPU-ms per call | change feed {feedMs,5:F2} ms"
                + $" | page of {PageSize} to the end {pageMs,6:F2} ms, in a window of {WindowKeys:N0} keys {windowMs,5:F2} ms");
            results.Add(string.Create(CultureInfo.InvariantCulture,
                $"{{\"keys\":{size},\"rangeEtcdMs\":{rangeMs:F2},\"feedEtcdMs\":{feedMs:F2},\"pageEtcdMs\":{pageMs:F2},\"windowPageEtcdMs\":{windowMs:F2}}}"));
        }

        Console.WriteLine("RESULT [" + string.Join(",", results) + "]");
        return 0;
    }

    private static async Task<double> EtcdCpuPerCallAsync(int calls, Func<Task> call)
    {
        var before = SystemCpu.DescendantSecondsByProgram().GetValueOrDefault("etcd");
        for (var index = 0; index < calls; index++)
        {
            await call();
        }

        return (SystemCpu.DescendantSecondsByProgram().GetValueOrDefault("etcd") - before) * 1000 / calls;
    }
}

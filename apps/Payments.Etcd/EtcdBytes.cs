using Etcdserverpb;
using Google.Protobuf;

namespace Payments.Etcd;

/// <summary>Small builders for etcd requests, so that transaction code reads as what it compares and writes.</summary>
public static class EtcdBytes
{
    public static ByteString Key(string key) => ByteString.CopyFromUtf8(key);

    /// <summary>An instant as a key segment that sorts by time: Unix milliseconds, 13 digits (enough until the year
    /// 2286); instants before 1970 as 0. For index keys read in time order (finished payments, events, deliveries due).</summary>
    public static string TimeKey(DateTimeOffset at) =>
        Math.Max(0, at.ToUnixTimeMilliseconds()).ToString("D13", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>A key prefix ending in '/', so that "a/b" never also matches "a/bc…".</summary>
    public static string AsPrefix(string prefix) => prefix.EndsWith('/') ? prefix : prefix + "/";

    /// <summary>The end of a prefix range: the prefix with its last byte incremented.</summary>
    public static ByteString PrefixEnd(string prefix)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(prefix);
        for (var index = bytes.Length - 1; index >= 0; index--)
        {
            if (bytes[index] < 0xff)
            {
                bytes[index]++;
                return ByteString.CopyFrom(bytes.AsSpan(0, index + 1));
            }
        }

        return ByteString.CopyFrom(0);
    }

    /// <summary>The key's last modification was at <paramref name="modRevision"/> (0: the key does not exist).</summary>
    public static Compare ModRevisionIs(string key, long modRevision) => new()
    {
        Key = Key(key),
        Target = Compare.Types.CompareTarget.Mod,
        Result = Compare.Types.CompareResult.Equal,
        ModRevision = modRevision,
    };

    /// <summary>The key was created at <paramref name="createRevision"/> (0: the key does not exist).</summary>
    public static Compare CreateRevisionIs(string key, long createRevision) => new()
    {
        Key = Key(key),
        Target = Compare.Types.CompareTarget.Create,
        Result = Compare.Types.CompareResult.Equal,
        CreateRevision = createRevision,
    };

    public static RequestOp Put(string key, ByteString value, long leaseId = 0) =>
        new() { RequestPut = new PutRequest { Key = Key(key), Value = value, Lease = leaseId } };

    public static RequestOp Delete(string key) => new() { RequestDeleteRange = new DeleteRangeRequest { Key = Key(key) } };

    public static RequestOp Get(string key) => new() { RequestRange = new RangeRequest { Key = Key(key) } };
}

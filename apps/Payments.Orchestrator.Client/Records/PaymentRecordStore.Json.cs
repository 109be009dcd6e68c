using System.Text.Json;
using Google.Protobuf;

namespace Payments.Orchestrator.Client.Records;

/// <summary>How a record is stored: UTF-8 JSON (web defaults).</summary>
public sealed partial class PaymentRecordStore
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>A record as etcd holds it (JSON), e.g. for the archive.</summary>
    public static string ToJson(PaymentRecord record) => JsonSerializer.Serialize(record, Json);

    /// <summary>A record from its JSON (<see cref="ToJson"/>).</summary>
    public static PaymentRecord FromJson(string json) =>
        JsonSerializer.Deserialize<PaymentRecord>(json, Json) ?? throw new InvalidDataException("Empty payment record.");

    private static ByteString Encode(PaymentRecord record) => ByteString.CopyFromUtf8(ToJson(record));

    /// <summary>A record as etcd stores it (UTF-8 JSON), e.g. from a watch event.</summary>
    public static PaymentRecord FromUtf8(ReadOnlySpan<byte> utf8) =>
        JsonSerializer.Deserialize<PaymentRecord>(utf8, Json) ?? throw new InvalidDataException("Empty payment record.");

    private static PaymentRecord Decode(ByteString value) => FromUtf8(value.Span);

    /// <summary>For the batch reads (the sweeper's, the archiver's): a record that does not read is left out and
    /// counted (<c>payments.records.unreadable</c>), not thrown — thrown, it failed every pass at its page.</summary>
    private static PaymentRecord? TryDecode(ByteString value)
    {
        try
        {
            return Decode(value);
        }
        catch (Exception exception) when (exception is JsonException or InvalidDataException or NotSupportedException)
        {
            PaymentRecordMetrics.CountUnreadable();
            return null;
        }
    }
}

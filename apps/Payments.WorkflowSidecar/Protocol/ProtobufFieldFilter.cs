using Google.Protobuf;

namespace Payments.WorkflowSidecar.Protocol;

/// <summary>Which fields of a protobuf message to drop, and which nested messages to filter the same way.</summary>
internal sealed class FieldFilter
{
    private readonly HashSet<int> dropped;
    private readonly Dictionary<int, FieldFilter> nested;

    public FieldFilter(IEnumerable<int> drop, IReadOnlyDictionary<int, FieldFilter>? into = null)
    {
        dropped = [.. drop];
        nested = into is null ? [] : new Dictionary<int, FieldFilter>(into);
    }

    /// <summary>Nesting deeper than this is not a message we know: a bound against hostile or corrupt input.</summary>
    public const int MaxDepth = 16;

    /// <summary>Copies <paramref name="message"/> field by field, leaving out the dropped fields at every level.
    /// Fields it does not name are copied byte for byte, so nothing else of the message changes.</summary>
    public byte[] Apply(ReadOnlySpan<byte> message) => Apply(message.ToArray(), depth: 0);

    private byte[] Apply(byte[] message, int depth)
    {
        if (depth > MaxDepth)
        {
            throw new InvalidDataException($"Protobuf message nested deeper than {MaxDepth} levels.");
        }

        using var buffer = new MemoryStream(message.Length);
        var output = new CodedOutputStream(buffer);
        var input = new CodedInputStream(message);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            var field = WireFormat.GetTagFieldNumber(tag);
            var wireType = WireFormat.GetTagWireType(tag);
            if (dropped.Contains(field))
            {
                input.SkipLastField();
                continue;
            }

            output.WriteTag(tag);
            switch (wireType)
            {
                case WireFormat.WireType.Varint:
                    output.WriteUInt64(input.ReadUInt64());
                    break;
                case WireFormat.WireType.Fixed64:
                    output.WriteFixed64(input.ReadFixed64());
                    break;
                case WireFormat.WireType.Fixed32:
                    output.WriteFixed32(input.ReadFixed32());
                    break;
                case WireFormat.WireType.LengthDelimited:
                    var bytes = input.ReadBytes();
                    output.WriteBytes(nested.TryGetValue(field, out var inner)
                        ? ByteString.CopyFrom(inner.Apply(bytes.ToByteArray(), depth + 1))
                        : bytes);
                    break;
                default:
                    // Groups are proto2 only; neither side of this protocol uses them.
                    throw new InvalidDataException($"Unsupported protobuf wire type {wireType} in field {field}.");
            }
        }

        output.Flush();
        return buffer.ToArray();
    }
}

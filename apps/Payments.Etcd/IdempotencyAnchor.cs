using System.Globalization;
using Google.Protobuf;

namespace Payments.Etcd;

/// <summary>The value of a key's lifetime anchor (<see cref="IdempotencyStore.AnchorRetention"/>): the lifetime id and
/// when that lifetime began, as "{id} {ticks}".</summary>
internal static class IdempotencyAnchor
{
    public static ByteString Encode(string lifetimeId, DateTimeOffset createdAt) =>
        ByteString.CopyFromUtf8($"{lifetimeId} {createdAt.UtcTicks.ToString(CultureInfo.InvariantCulture)}");

    public static (string LifetimeId, DateTimeOffset CreatedAt) Decode(ByteString value)
    {
        var parts = value.ToStringUtf8().Split(' ');
        return (parts[0], new DateTimeOffset(long.Parse(parts[1], CultureInfo.InvariantCulture), TimeSpan.Zero));
    }
}

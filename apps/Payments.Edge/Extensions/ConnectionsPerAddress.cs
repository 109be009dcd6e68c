using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Payments.ServiceDefaults.Security;

namespace Payments.Edge.Extensions;

/// <summary>At most <paramref name="limit"/> open connections per client address (an IPv6 client per /64, what one
/// host is given), refused at once past it. A probe held ~20,000 idle connections from one address with no key: the
/// edge ran out of file descriptors, every client was refused, /healthz included, and the edge crashed in 2 of 3 runs
/// (the runtime could not map memory). With this and Kestrel's total bound (<see cref="EdgeOptions.MaxConnections"/>)
/// one address cannot lock the others out, and no number of addresses can take the process down.</summary>
public sealed class ConnectionsPerAddress(int limit, ILogger logger)
{
    private readonly Payments.ServiceDefaults.BoundedCounts<UInt128> open = new();
    private readonly RefusalLog refusals = new();

    public ConnectionDelegate Middleware(ConnectionDelegate next) => async connection =>
    {
        var address = KeyOf(connection.RemoteEndPoint);
        if (address is not { } key)
        {
            await next(connection); // not an IP connection (a Unix socket): nothing to count by
            return;
        }

        if (!open.TryTake(key, limit))
        {
            if (refusals.ShouldLog(out var refused))
            {
                logger.LogWarning("Edge refused a connection from {Address}: it has {Limit} open ({Refused} refused since the last line)",
                    connection.RemoteEndPoint, limit, refused);
            }

            connection.Abort(new ConnectionAbortedException("Too many connections from this address."));
            return;
        }

        try
        {
            await next(connection);
        }
        finally
        {
            open.GiveBack(key);
        }
    };

    /// <summary>An IPv4 address (also as IPv4-mapped IPv6) as itself; an IPv6 address by its first 64 bits.</summary>
    internal static UInt128? KeyOf(EndPoint? endPoint)
    {
        if (endPoint is not IPEndPoint { Address: var address })
        {
            return null;
        }

        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        Span<byte> bytes = stackalloc byte[16];
        bytes.Clear();
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            address.TryWriteBytes(bytes[12..], out _);
            return new UInt128(0, System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]));
        }

        address.TryWriteBytes(bytes, out _);
        return new UInt128(System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(bytes), 1); // the /64; 1 tells it from any IPv4
    }
}

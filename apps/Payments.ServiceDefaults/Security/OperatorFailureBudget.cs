using System.Net;

namespace Payments.ServiceDefaults.Security;

/// <summary>Refused operator tokens per caller address: past <see cref="MaxFailures"/> in a <see cref="Window"/>, an
/// address is answered 429 without its token being compared until the window ends. The token is the operator's choice
/// (at least 32 characters, not necessarily random): unlimited, a guesser inside the cluster had as many tries as the
/// service could answer (a review). An operator whose address is over budget waits at most a window.</summary>
/// <remarks>Bounded: at most <see cref="MaxAddresses"/> addresses are counted; when full, windows that ended are
/// dropped, and if none has, the table starts afresh (a flood of addresses gets no more tries than one address would
/// per window, at worst a fresh budget each).</remarks>
public sealed class OperatorFailureBudget(TimeProvider time)
{
    public const int MaxFailures = 20;

    public static readonly TimeSpan Window = TimeSpan.FromMinutes(1);

    public const int MaxAddresses = 4_096;

    /// <summary>The process's budget (the admin filter is made per request).</summary>
    public static OperatorFailureBudget Shared { get; } = new(TimeProvider.System);

    private readonly Dictionary<IPAddress, (DateTimeOffset Started, int Failures)> addresses = [];
    private readonly Lock gate = new();

    /// <summary>How long until <paramref name="address"/> may try again, or null while it is within its budget.</summary>
    public TimeSpan? RetryAfter(IPAddress? address)
    {
        var now = time.GetUtcNow();
        lock (gate)
        {
            return addresses.TryGetValue(Key(address), out var counted) && now - counted.Started < Window && counted.Failures >= MaxFailures
                ? counted.Started + Window - now
                : null;
        }
    }

    /// <summary>Counts a refused token from <paramref name="address"/>.</summary>
    public void Failed(IPAddress? address)
    {
        var now = time.GetUtcNow();
        var key = Key(address);
        lock (gate)
        {
            if (addresses.TryGetValue(key, out var counted) && now - counted.Started < Window)
            {
                addresses[key] = (counted.Started, counted.Failures + 1);
                return;
            }

            if (addresses.Count >= MaxAddresses && !addresses.ContainsKey(key))
            {
                foreach (var ended in addresses.Where(entry => now - entry.Value.Started >= Window).Select(entry => entry.Key).ToArray())
                {
                    addresses.Remove(ended);
                }

                if (addresses.Count >= MaxAddresses)
                {
                    addresses.Clear();
                }
            }

            addresses[key] = (now, 1);
        }
    }

    /// <summary>IPv4 and its IPv6-mapped form count as one address; no address (an in-memory test server) as one too.</summary>
    private static IPAddress Key(IPAddress? address) =>
        address is null ? IPAddress.None : address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
}

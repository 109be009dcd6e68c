using System.Net;

namespace Payments.ServiceDefaults.Security;

/// <summary>Refused operator tokens per caller address: past <see cref="MaxFailures"/> in a <see cref="Window"/>, each
/// further wrong token from that address is answered 429 after <see cref="RefusalDelay"/>. The token is the operator's
/// choice (at least 32 characters, not necessarily random): unlimited, a guesser inside the cluster had as many tries
/// as the service could answer (a review). The right token is always compared and let through — a budget that refused
/// it let anyone behind the operator's address (kubectl port-forward, a NAT), or a script with a rotated-out token,
/// lock the operators out during an incident — so this slows and flags guessing; the token's entropy is what stops it
/// (generate it: docs/security.md).</summary>
/// <remarks>Bounded: at most <see cref="MaxAddresses"/> addresses are counted; when full, windows that ended are
/// dropped, and if none has, the table starts afresh (a flood of addresses gets no more tries than one address would
/// per window, at worst a fresh budget each).</remarks>
public sealed class OperatorFailureBudget(TimeProvider time)
{
    public const int MaxFailures = 20;

    public static readonly TimeSpan Window = TimeSpan.FromMinutes(1);

    public const int MaxAddresses = 4_096;

    /// <summary>How late a wrong token past the budget is answered.</summary>
    public static readonly TimeSpan RefusalDelay = TimeSpan.FromSeconds(1);

    /// <summary>Refusals held back at once (past it, answered at once): the delay must not hold unbounded requests.</summary>
    public const int MaxDelayedRefusals = 64;

    private readonly SemaphoreSlim delayed = new(MaxDelayedRefusals, MaxDelayedRefusals);

    /// <summary>The process's budget (the admin filter is made per request).</summary>
    public static OperatorFailureBudget Shared { get; } = new(TimeProvider.System);

    private readonly Dictionary<IPAddress, (DateTimeOffset Started, int Failures)> addresses = [];
    private readonly Lock gate = new();

    /// <summary>How long until <paramref name="address"/> may try again, or null while it is within its budget.</summary>
    public TimeSpan? RetryAfter(IPAddress? address)
    {
        if (address is null)
        {
            return null; // no address (an in-memory test server; Kestrel always gives one): not counted
        }

        var now = time.GetUtcNow();
        lock (gate)
        {
            return addresses.TryGetValue(Key(address), out var counted) && now - counted.Started < Window && counted.Failures >= MaxFailures
                ? counted.Started + Window - now
                : null;
        }
    }

    /// <summary>Holds a refusal past the budget back for <see cref="RefusalDelay"/>, unless <see cref="MaxDelayedRefusals"/>
    /// are held already.</summary>
    public async Task DelayRefusalAsync(CancellationToken cancellationToken)
    {
        if (!delayed.Wait(0, CancellationToken.None))
        {
            return;
        }

        try
        {
            await Task.Delay(RefusalDelay, time, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // the caller left: nothing to answer
        }
        finally
        {
            delayed.Release();
        }
    }

    /// <summary>Counts a refused token from <paramref name="address"/>.</summary>
    public void Failed(IPAddress? address)
    {
        if (address is null)
        {
            return;
        }

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

    /// <summary>IPv4 and its IPv6-mapped form count as one address.</summary>
    private static IPAddress Key(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
}

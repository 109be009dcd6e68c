using Payments.Api.Apis;
using Payments.Api.Problems;
using Payments.ServiceDefaults;

namespace Payments.Api.Idempotency;

/// <summary>Which refusals (a 4xx answer, nothing written) are kept as their Idempotency-Key's answer: at most
/// <see cref="ApiOptions.RefusalsKeptPerMerchantPerMinute"/> in a minute per merchant and
/// <see cref="AllMerchantsFactor"/> times that from every merchant together, each replica keeping its share (as with a
/// key's rate: the etcd they fill is shared, and replicas are added under load). Each kept answer is an etcd
/// record for a day: a key at its rate sending new Idempotency-Keys with an unknown account (404) wrote ~1 KB a request
/// for 25 h — at 500 a second, etcd's quota within hours, and every merchant's payments stopped. Past the budget the
/// refusal is answered and not kept; a retry with the key runs again, which is safe: the refusal moved nothing.</summary>
/// <remarks>Counted in windows of a minute of <see cref="TimeProvider"/>'s time, which tests can drive; the table holds
/// only the merchants counted in the current window, no more than the budget of all merchants.</remarks>
public sealed class RefusalsKept(ApiOptions options, TimeProvider time)
{
    /// <summary>Every merchant's refusals kept together in a minute, as a multiple of one merchant's.</summary>
    public const int AllMerchantsFactor = 10;

    private static readonly TimeSpan Window = TimeSpan.FromMinutes(1);

    private readonly BoundedCounts<string> perMerchant = new(StringComparer.Ordinal);
    private readonly Lock gate = new();
    private long window = long.MinValue;
    private long kept;

    /// <summary>Whether <paramref name="reply"/> is kept: any answer but a refusal is; a refusal while the budgets last.</summary>
    public bool Keep(string merchantId, Reply reply)
    {
        ArgumentNullException.ThrowIfNull(reply);
        if (reply.StatusCode is < 400 or >= 500)
        {
            return true;
        }

        var limit = options.RefusalsKeptPerMerchantPerMinutePerReplica;
        lock (gate)
        {
            var now = time.GetUtcNow().UtcTicks / Window.Ticks;
            if (now != window)
            {
                (window, kept) = (now, 0);
                perMerchant.Clear();
            }

            if (kept >= (long)limit * AllMerchantsFactor || !perMerchant.TryTake(merchantId, limit))
            {
                return false;
            }

            kept++;
            return true;
        }
    }
}

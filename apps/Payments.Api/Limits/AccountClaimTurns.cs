using Payments.Etcd;
using Payments.Merchants;

namespace Payments.Api.Limits;

/// <summary>One replica's claims of a merchant's accounts take turns: each is a compare-and-swap of the merchant's
/// account count (<see cref="MerchantStore.ClaimAccountAsync"/>), and a burst of one merchant's opens racing each other
/// lost most rounds and ended in 503s. Other merchants' claims do not wait (a gate per merchant, only while used).</summary>
public sealed class AccountClaimTurns
{
    /// <summary>The longest an open waits for its merchant's turn before it is answered 503 (retry).</summary>
    public static readonly TimeSpan GateTimeout = TimeSpan.FromSeconds(10);

    private readonly KeyedGates gates = new();

    /// <summary>The claim, in the merchant's turn.</summary>
    /// <exception cref="EtcdContentionException">No turn within <see cref="GateTimeout"/>, or the count kept changing.</exception>
    public async Task<AccountClaim> ClaimAsync(
        MerchantStore store, string accountId, string merchantId, string? namespacedId, long maxAccounts, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        using var turn = await gates.TurnAsync(merchantId, GateTimeout, $"The accounts of merchant {merchantId}", cancellationToken);
        return await store.ClaimAccountAsync(accountId, merchantId, namespacedId, maxAccounts, cancellationToken);
    }
}

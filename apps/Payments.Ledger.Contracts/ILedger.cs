using Payments.Domain;

namespace Payments.Ledger.Contracts;

/// <summary>What the rest of the platform asks of the ledger. The ledger itself is <c>EtcdLedger</c> (Payments.Ledger.Core); the
/// payment activities reach it through this interface — in process in the local mode, over Dapr service invocation
/// on Kubernetes — so their code is the same in both.</summary>
public interface ILedger
{
    Task<OpenAccountOutcome> OpenAccountAsync(AccountId id, Currency currency, long overdraftLimitMinor, CancellationToken cancellationToken);

    Task<Account?> GetAccountAsync(AccountId id, CancellationToken cancellationToken);

    Task<TransferOutcome> TransferAsync(TransferRequest request, CancellationToken cancellationToken);

    Task<BatchOutcome> ApplyBatchAsync(IReadOnlyList<TransferRequest> batch, CancellationToken cancellationToken);
}

using Payments.Domain;

namespace Payments.Ledger.Contracts;

/// <summary>What the rest of the platform asks of the ledger. The ledger itself is <c>EtcdLedger</c>
/// (Payments.Ledger.Core), served by the ledger service; the saga and the API reach it through this interface over
/// Dapr service invocation (<c>HttpLedger</c>), so they never depend on etcd.</summary>
public interface ILedger
{
    Task<OpenAccountOutcome> OpenAccountAsync(AccountId id, Currency currency, long overdraftLimitMinor, CancellationToken cancellationToken);

    /// <summary>Sets an existing customer account's overdraft limit, atomically (one compare-and-swap). Setting the
    /// value it already has is a success that changes nothing. The ledger bounds it by nothing but its sign and the
    /// account's current use of it; the configured maximum is the API's (operator-only: merchants cannot set it).</summary>
    Task<SetOverdraftOutcome> SetOverdraftLimitAsync(AccountId id, long overdraftLimitMinor, CancellationToken cancellationToken);

    Task<Account?> GetAccountAsync(AccountId id, CancellationToken cancellationToken);

    /// <summary>A transfer as the journal holds it, or null if the ledger has none by that id (never applied, or
    /// archived past the replay window). A resumed saga asks whether its hold exists before it decides anything again.</summary>
    Task<JournalEntry?> GetTransferAsync(TransferId id, CancellationToken cancellationToken);

    Task<TransferOutcome> TransferAsync(TransferRequest request, CancellationToken cancellationToken);

    Task<BatchOutcome> ApplyBatchAsync(IReadOnlyList<TransferRequest> batch, CancellationToken cancellationToken);
}

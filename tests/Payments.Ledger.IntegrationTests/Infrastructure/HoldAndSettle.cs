using Payments.Domain;
using Payments.Ledger.Contracts;

namespace Payments.Ledger.IntegrationTests.Infrastructure;

/// <summary>The saga's money step as the ledger receives it: hold the debtor's funds, credit the creditor from
/// in-transit, post the hold — one linked batch, all or nothing.</summary>
internal static class HoldAndSettle
{
    /// <summary>The batch, its transfer ids <paramref name="idPrefix"/> followed by -hold, -credit and -post.</summary>
    public static TransferRequest[] Batch(string idPrefix, AccountId debtor, AccountId creditor, long amountMinor)
    {
        var hold = TransferId.Parse($"{idPrefix}-hold");
        var amount = new Money(amountMinor, Currency.Usd);
        return
        [
            new TransferRequest.Pending(hold, debtor, AccountId.InTransit(Currency.Usd), amount, TimeSpan.FromMinutes(15), null),
            new TransferRequest.Single(TransferId.Parse($"{idPrefix}-credit"), AccountId.InTransit(Currency.Usd), creditor, amount),
            new TransferRequest.PostPending(TransferId.Parse($"{idPrefix}-post"), hold),
        ];
    }
}

using Payments.Domain;
using Payments.Orchestrator.Client.Models;

namespace Payments.Orchestrator.Activities;

/// <summary>The transfer ids of a payment's ledger steps: derived from the payment id, so a retried or replayed
/// activity can only ever repeat the same transfer, which the ledger applies at most once.</summary>
public static class PaymentTransfers
{
    public static TransferId Hold(PaymentInput payment) => Root(payment).Derive("hold");

    public static TransferId Post(PaymentInput payment) => Root(payment).Derive("post");

    public static TransferId Credit(PaymentInput payment) => Root(payment).Derive("credit");

    public static TransferId Void(PaymentInput payment) => Root(payment).Derive("void");

    public static Money Amount(PaymentInput payment) => new(payment.Order.AmountMinor, Currency.FromCode(payment.Order.Currency));

    private static TransferId Root(PaymentInput payment) => TransferId.Parse(payment.PaymentId);
}

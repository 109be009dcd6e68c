using Payments.Domain;

namespace Payments.Orchestrator.Client.Models;

/// <summary>The transfer ids of a payment's ledger steps: derived from the payment id, so a retried or replayed
/// activity — or a resumed saga — can only ever repeat the same transfer, which the ledger applies at most once. The
/// checkers find a payment's effects in the journal by the same ids.</summary>
public static class PaymentTransfers
{
    public static TransferId Hold(string paymentId) => Root(paymentId).Derive("hold");

    public static TransferId Post(string paymentId) => Root(paymentId).Derive("post");

    public static TransferId Credit(string paymentId) => Root(paymentId).Derive("credit");

    public static TransferId Void(string paymentId) => Root(paymentId).Derive("void");

    public static TransferId Hold(PaymentInput payment) => Hold(Id(payment));

    public static TransferId Post(PaymentInput payment) => Post(Id(payment));

    public static TransferId Credit(PaymentInput payment) => Credit(Id(payment));

    public static TransferId Void(PaymentInput payment) => Void(Id(payment));

    /// <summary>When every transfer of the payment counts as issued (<see cref="PaymentInput.CreatedAt"/>).</summary>
    public static DateTimeOffset IssuedAt(PaymentInput payment)
    {
        ArgumentNullException.ThrowIfNull(payment);
        return payment.CreatedAt ?? throw new InvalidOperationException($"Payment {payment.PaymentId} has no creation time; the workflow sets it before any step.");
    }

    public static Money Amount(PaymentInput payment)
    {
        ArgumentNullException.ThrowIfNull(payment);
        return new Money(payment.Order.AmountMinor, Currency.FromCode(payment.Order.Currency));
    }

    private static string Id(PaymentInput payment)
    {
        ArgumentNullException.ThrowIfNull(payment);
        return payment.PaymentId;
    }

    private static TransferId Root(string paymentId) => TransferId.Parse(paymentId);
}

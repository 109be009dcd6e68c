using System.Globalization;
using Payments.Api.Contracts;
using Payments.Api.Problems;
using Payments.Api.Security;
using Payments.Domain;
using Payments.Orchestrator.Client.Records;

namespace Payments.Api.Apis;

/// <summary><c>GET /v1/payments/{id}</c>: the payment as its record says — the saga writes every status a client sees
/// into the record, so a read is one etcd read and never a call to the orchestrator. With <c>?wait=</c> the request
/// waits (bounded) for the status to change instead of the client polling.</summary>
public static class PaymentReads
{
    public static async Task<IResult> GetAsync(string paymentId, HttpContext context, PaymentServices services, PaymentStatusWaits waits, Payments.Merchants.MerchantStore keys)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(waits);
        if (WaitErrors(context.Request.Query) is { Count: > 0 } errors)
        {
            return Reply.Invalid(errors).ToResult();
        }

        var wait = WaitOf(context.Request.Query);
        if (!ArchivedPayments.IsPaymentIdShape(paymentId))
        {
            // No payment has such an id: answered without a read of etcd, and without a place among the waiters (each
            // remembers its id: an 8 KB made-up id per request filled a replica's memory).
            return Reply.PaymentNotFound(paymentId).ToResult();
        }

        var merchant = ApiKeyMiddleware.MerchantOf(context);
        var withdrawn = false; // the key stopped standing during the wait: found at a recheck's read, or at its end
        async Task<PaymentRecord?> ReadAsync(CancellationToken cancellationToken)
        {
            withdrawn = wait.Duration > TimeSpan.Zero && !await ApiKeyMiddleware.StillAuthenticatedAsync(context, keys);
            return withdrawn ? null : await services.CurrentAsync(paymentId, merchant, cancellationToken);
        }

        var current = await waits.WaitAsync(paymentId, wait.From, wait.Duration, ReadAsync,
            record => PaymentServices.VisibleTo(record, merchant), context.RequestAborted, merchant, () => Limits.RequestsInFlight.GiveBack(context));
        if (withdrawn || (wait.Duration > TimeSpan.Zero && !await ApiKeyMiddleware.StillAuthenticatedAsync(context, keys)))
        {
            return ApiKeyMiddleware.Withdrawn(context).ToResult();
        }

        try
        {
            // Finished payments older than the archive's retention live in Cosmos DB, no longer in etcd.
            current ??= await services.Archive.GetAsync(paymentId, merchant, context.RequestAborted);
        }
        catch (ArchiveUnavailableException)
        {
            return Reply.Unavailable("The archive of finished payments did not answer; retry later.").ToResult();
        }

        return current is null
            ? Reply.PaymentNotFound(paymentId).ToResult()
            : Reply.Json(StatusCodes.Status200OK, ToResponse(current)).ToResult();
    }

    /// <summary>How long to wait and for a change from which status (the parameters checked by <see cref="WaitErrors"/>).</summary>
    private static (TimeSpan Duration, string? From) WaitOf(IQueryCollection query) =>
        (TimeSpan.FromSeconds(query.TryGetValue("wait", out var wait) ? int.Parse(wait.ToString(), NumberStyles.None, CultureInfo.InvariantCulture) : 0),
            query.TryGetValue("status", out var status) ? status.ToString() : null);

    private static Dictionary<string, string> WaitErrors(IQueryCollection query)
    {
        var errors = new Dictionary<string, string>();
        if (query.TryGetValue("wait", out var wait)
            && (wait.Count != 1 || !int.TryParse(wait.ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out var seconds)
                || seconds > PaymentStatusWaits.MaxWaitSeconds))
        {
            errors["wait"] = $"wait must be a whole number of seconds from 0 to {PaymentStatusWaits.MaxWaitSeconds}.";
        }

        if (query.TryGetValue("status", out var status) && (status.Count != 1 || !IsStatus(status.ToString())))
        {
            errors["status"] = "status must be one of " + string.Join(", ", PaymentStatus.All) + ".";
        }
        else if (status.Count > 0 && !query.ContainsKey("wait"))
        {
            // Alone it changes nothing (the read answers at once): a client that meant to wait and misspelt wait
            // was answered at once with the status it named, as if nothing had happened (a probe).
            errors["status"] = "status is read only with wait (the status to wait for a change from); give wait too, or leave status out.";
        }

        Validate.QueryParameters(query, ["wait", "status"], errors);
        return errors;
    }

    private static bool IsStatus(string status) => PaymentStatus.All.Contains(status);

    private static PaymentResponse ToResponse(PaymentRecord record) => new(
        record.PaymentId, record.Status, record.Order.AmountMinor, record.Order.Currency, AccountId.PublicIdOf(record.Order.DebtorAccountId),
        AccountId.PublicIdOf(record.Order.CreditorAccountId), record.Order.Reference, record.Reason, record.CreatedAt, record.UpdatedAt,
        record.Review is { } review ? new PaymentReviewResponse(review.Decision, review.DecidedBy, review.DecidedAt) : null);
}

using Payments.Api.Problems;
using Payments.Domain;
using Payments.Orchestrator.Client.Records;

namespace Payments.Api.Apis;

/// <summary>A reviewer's decision, as written into the payment's record.</summary>
public static partial class PaymentsApi
{
    /// <summary>Writes the review into the record by compare-and-swap (bounded rounds); a problem when another
    /// decision got there first.</summary>
    private static async Task<Reply?> RecordReviewAsync(string paymentId, PaymentReview review, PaymentServices services, CancellationToken cancellationToken)
    {
        for (var attempt = 1; attempt <= PaymentRecordStore.MaxCasAttempts; attempt++)
        {
            if (await services.Records.GetAsync(paymentId, cancellationToken) is not { Record: var record, Revision: var revision })
            {
                return Reply.PaymentNotFound(paymentId);
            }

            if (record.Review is { } earlier)
            {
                return earlier.DecidedBy == review.DecidedBy && earlier.Decision == review.Decision ? null : AlreadyDecided(paymentId, earlier);
            }

            if (PaymentStatus.IsTerminal(record.Status))
            {
                // Ended since the caller's first read (its approval deadline passed in the saga): a review written now
                // would sit on a failed payment, and the reviewer be told it goes on. (Not "not awaiting approval": a
                // payment held before sagas wrote that status into the record still reads pending while it waits.)
                return Reply.Problem(StatusCodes.Status409Conflict, ProblemTypes.PaymentNotAwaitingApproval, "The payment is not awaiting approval.",
                    $"Payment '{paymentId}' is {record.Status}.");
            }

            if (await services.Records.UpdateAsync(record with { Review = review, UpdatedAt = review.DecidedAt }, revision, cancellationToken))
            {
                return null;
            }
        }

        return Reply.Unavailable("The payment kept changing while the decision was recorded; retry.");
    }

    private static Reply AlreadyDecided(string paymentId, PaymentReview earlier) =>
        Reply.Problem(StatusCodes.Status409Conflict, ProblemTypes.PaymentAlreadyDecided, "The payment has already been reviewed.",
            $"Payment '{paymentId}' was {earlier.Decision} by {earlier.DecidedBy} at {earlier.DecidedAt:O}.");
}

using System.Diagnostics;
using System.Diagnostics.Metrics;
using Payments.Orchestrator.Client.Models;
using Payments.Telemetry;

namespace Payments.Orchestrator.Activities;

/// <summary>A span and a duration metric around one run of a saga activity, tagged with the payment id and result.</summary>
internal static class SagaStep
{
    private static readonly Histogram<double> StepDuration = PaymentsTelemetry.Meter.CreateHistogram<double>(
        "payments.saga.step.duration", unit: "ms", description: "payment saga activity duration");

    public static async Task<T> TraceAsync<T>(string step, PaymentInput input, Func<Task<T>> body)
    {
        using var span = ActivityContext.TryParse(input.TraceParent, null, out var parent)
            ? PaymentsTelemetry.Source.StartActivity("saga." + step, ActivityKind.Internal, parent)
            : PaymentsTelemetry.Source.StartActivity("saga." + step);
        span?.SetTag("payment.id", input.PaymentId);
        var clock = Stopwatch.StartNew();
        var result = "ok";
        try
        {
            var value = await body();
            if (value is StepResult { Succeeded: false } refused)
            {
                result = refused.ErrorCode ?? "refused";
            }

            return value;
        }
        catch
        {
            result = "fault";
            throw;
        }
        finally
        {
            span?.SetTag("saga.result", result);
            StepDuration.Record(
                clock.Elapsed.TotalMilliseconds, new KeyValuePair<string, object?>("step", step), new KeyValuePair<string, object?>("result", result));
        }
    }
}

using Payments.Domain;
using Payments.Failover.Core.Replication;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core;
using Payments.Ledger.Replication;
using Payments.Ledger.Security;
using Payments.ServiceDefaults;
using Payments.ServiceDefaults.Security;

namespace Payments.Ledger.Apis;

/// <summary>The ledger's internal API. Every route names the roles it serves (the service identity check refuses
/// everyone else, and on Kubernetes Dapr access control too), and every transfer passes <see cref="LedgerCallerPolicy"/>
/// for its caller. Business outcomes are 200 bodies with their codes; 503 means "retry with the same ids".</summary>
public static class LedgerApi
{
    public static void MapLedgerApi(this IEndpointRouteBuilder app)
    {
        var ledger = app.MapGroup("/" + LedgerRoutes.Prefix.TrimEnd('/'));
        ledger.MapPost("/accounts", async (OpenAccountWire body, EtcdLedger etcdLedger, HttpContext context, CancellationToken cancellationToken) =>
            body.OverdraftLimitMinor != 0
                // The API opens every account without one; an overdraft is the operator's, set afterwards (and bounded by
                // the API's limits). Refused here so a compromised API cannot open accounts with any overdraft it likes.
                ? Refused(context, "An account is opened without an overdraft; the operator sets one through /accounts/{id}/overdraft.")
                : AccountId.TryParseLedger(body.Id, out var id, out var problem) && Currency.TryFromCode(body.Currency, out var currency)
                ? await Unavailable503(context, async () => Results.Ok(LedgerWire.ToWire(await etcdLedger.OpenAccountAsync(id, currency, 0, cancellationToken))))
                : Results.Problem(problem ?? $"Unknown currency '{body.Currency}'.", statusCode: StatusCodes.Status400BadRequest, title: "One or more fields are invalid.", type: ProblemTypes.ValidationFailed))
            .RequireCallers(ServiceRoles.Api);
        // Operator-only in the public API (its admin surface calls this through ILedger); the API alone may ask.
        ledger.MapPost("/accounts/{id}/overdraft", SetOverdraftAsync).RequireCallers(ServiceRoles.Api);
        ledger.MapGet("/accounts/{id}", GetAccountAsync).RequireCallers(ServiceRoles.Api, ServiceRoles.Orchestrator);
        ledger.MapPost("/transfers", TransferAsync).RequireCallers(ServiceRoles.Api, ServiceRoles.Orchestrator);
        // A resumed saga asks whether its hold exists; the API finds a key's deposit (deposits only: TransferReadRefusal).
        ledger.MapGet("/transfers/{id}", GetTransferAsync).RequireCallers(ServiceRoles.Orchestrator, ServiceRoles.Api);
        // Replication progress (the DR drill samples it; the same lag is the gauge payments.replication.lag).
        ledger.MapGet("/replication", (ReplicationOptions options, IServiceProvider services) =>
            services.GetService<JournalShipper>() is { } shipper
                ? Results.Ok(new ReplicationProgress(ModeName(options.Mode), shipper.ShippedSequence, shipper.LagMilliseconds))
                : Results.Ok(new ReplicationProgress(ModeName(options.Mode), -1, 0)))
            .RequireCallers(ServiceRoles.Failover);
        ledger.MapPost("/batches", BatchAsync).RequireCallers(ServiceRoles.Orchestrator);
    }

    private static async Task<IResult> GetAccountAsync(string id, EtcdLedger etcdLedger, HttpContext context, CancellationToken cancellationToken)
    {
        AccountId accountId;
        try
        {
            accountId = AccountId.ParseAny(id);
        }
        catch (ArgumentException exception)
        {
            return Results.Problem(ProblemText.Reason(exception), statusCode: StatusCodes.Status400BadRequest, title: "One or more fields are invalid.", type: ProblemTypes.ValidationFailed);
        }

        if (LedgerCallerPolicy.ReadRefusal(accountId) is { } refusal)
        {
            return Refused(context, refusal);
        }

        // etcd away: 503 with Retry-After like every other route of the ledger (it was a 500).
        return await Unavailable503(context, async () => await etcdLedger.GetAccountAsync(accountId, cancellationToken) is { } account
            ? Results.Ok(LedgerWire.ToWire(account))
            : Results.Problem($"The ledger has no account '{accountId.Value}'.", statusCode: StatusCodes.Status404NotFound, title: "Account not found.", type: ProblemTypes.AccountNotFound));
    }

    private static async Task<IResult> GetTransferAsync(string id, EtcdLedger etcdLedger, HttpContext context, CancellationToken cancellationToken)
    {
        if (!TransferId.TryParse(id, out var transferId, out var problem))
        {
            return Results.Problem(problem, statusCode: StatusCodes.Status400BadRequest, title: "One or more fields are invalid.", type: ProblemTypes.ValidationFailed);
        }

        var missing = Results.Problem($"The ledger has no transfer '{transferId.Value}' (never applied, or archived past the replay window).",
            statusCode: StatusCodes.Status404NotFound, type: ProblemTypes.TransferNotFound);
        return await Unavailable503(context, async () => await etcdLedger.GetTransferAsync(transferId, cancellationToken) is { } entry
            ? LedgerCallerPolicy.TransferReadRefusal(context.CallerRole(), entry) switch
            {
                null => Results.Ok(LedgerWire.ToWire(entry)),
                // Logged as refused, answered as missing: whether a saga's transfer exists is not the API's to learn.
                LedgerCallerPolicy.ApiReadsDepositsOnly => RefusedAs(context, LedgerCallerPolicy.ApiReadsDepositsOnly, missing),
                var refusal => Refused(context, refusal),
            }
            : missing);
    }

    /// <summary>Within the currency's <c>MaxOverdraftMinor</c>, which the API checks first: a limit above it is no
    /// request the API makes, so it is refused as the caller's overreach (a compromised API set one of 2^63 − 1 on any
    /// account, then paid from it: money out of nothing).</summary>
    private static async Task<IResult> SetOverdraftAsync(
        string id, SetOverdraftWire body, EtcdLedger etcdLedger, MoneyLimits limits, HttpContext context, CancellationToken cancellationToken)
    {
        if (!AccountId.TryParseLedger(id, out var accountId, out var problem))
        {
            return Results.Problem(problem, statusCode: StatusCodes.Status400BadRequest, title: "One or more fields are invalid.", type: ProblemTypes.ValidationFailed);
        }

        if (body.OverdraftLimitMinor is not { } limit)
        {
            return Results.Problem("overdraftLimitMinor is required.", statusCode: StatusCodes.Status400BadRequest, title: "One or more fields are invalid.", type: ProblemTypes.ValidationFailed);
        }

        // The maximum is judged on the record the write compares, not on a read before it (an account opened between
        // the two took any limit: a probe).
        return await Unavailable503(context, async () =>
            await etcdLedger.SetOverdraftLimitAsync(accountId, limit, currency => limits.For(currency).MaxOverdraftMinor, cancellationToken) is var outcome
            && outcome is SetOverdraftOutcome.Failed { Error: { Code: LedgerError.OverdraftAboveMaximum } above }
                ? Refused(context, above.Detail)
                : Results.Ok(LedgerWire.ToWire(outcome)));
    }

    private static async Task<IResult> TransferAsync(
        TransferWire body, EtcdLedger etcdLedger, ReplicationAcknowledger replication, MoneyLimits limits, HttpContext context, CancellationToken cancellationToken)
    {
        if (LedgerWire.FromWire(body, out var problem) is not { } request)
        {
            return Results.Problem(problem, statusCode: StatusCodes.Status400BadRequest, title: "One or more fields are invalid.", type: ProblemTypes.ValidationFailed);
        }

        if (LedgerCallerPolicy.SingleRefusal(context.CallerRole(), request) is { } refusal)
        {
            return Refused(context, refusal);
        }

        return await Unavailable503(context, async () =>
        {
            // A deposit above today's bound that the ledger applied already (the limit lowered since) is a retry whose
            // answer was lost: it replays, as the API promises, where a 403 made every retry a 5xx (a review). Read
            // only then: a deposit within the bound costs nothing more.
            if (LedgerCallerPolicy.DepositLimitRefusal(context.CallerRole(), request, limits) is { } overLimit
                && await etcdLedger.GetTransferAsync(request.Id, cancellationToken) is null)
            {
                return Refused(context, overLimit);
            }

            var outcome = await etcdLedger.TransferAsync(request, cancellationToken);
            await replication.WaitAsync(outcome, cancellationToken);
            return Results.Ok(LedgerWire.ToWire(outcome));
        });
    }

    private static async Task<IResult> BatchAsync(
        BatchWire body, EtcdLedger etcdLedger, ReplicationAcknowledger replication, HttpContext context, CancellationToken cancellationToken)
    {
        if (body.Transfers is not { } transfers)
        {
            return Results.Problem("transfers is required (an empty list is the ledger's batch-empty outcome).", statusCode: StatusCodes.Status400BadRequest, title: "One or more fields are invalid.", type: ProblemTypes.ValidationFailed);
        }

        var requests = new List<TransferRequest>();
        foreach (var wire in transfers.Take(EtcdLedger.MaxBatchTransfers + 1))
        {
            if (wire is null)
            {
                return Results.Problem("transfers must not contain null.", statusCode: StatusCodes.Status400BadRequest, title: "One or more fields are invalid.", type: ProblemTypes.ValidationFailed);
            }

            if (LedgerWire.FromWire(wire, out var problem) is not { } request)
            {
                return Results.Problem(problem, statusCode: StatusCodes.Status400BadRequest, title: "One or more fields are invalid.", type: ProblemTypes.ValidationFailed);
            }

            requests.Add(request);
        }

        if (LedgerCallerPolicy.BatchRefusal(context.CallerRole(), requests) is { } refusal)
        {
            return Refused(context, refusal); // the whole batch: nothing of it is written
        }

        return await Unavailable503(context, async () =>
        {
            var outcome = await etcdLedger.ApplyBatchAsync(LedgerCallerPolicy.Funded(context.CallerRole(), requests), cancellationToken);
            await replication.WaitAsync(outcome, cancellationToken);
            return Results.Ok(LedgerWire.ToWire(outcome));
        });
    }

    /// <summary>403 problem+json, logged with the caller: an authenticated app asked for what its role may not do.</summary>
    private static IResult Refused(HttpContext context, string reason) => RefusedAs(context, reason, ServiceIdentityExtensions.Forbidden(reason));

    /// <summary>A refusal logged with its reason, answered <paramref name="answer"/>.</summary>
    private static IResult RefusedAs(HttpContext context, string reason, IResult answer)
    {
        context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("Payments.Ledger.CallerPolicy").LogWarning(
            "Ledger refused {Method} {Path} for caller role {Role} (its caller header claims '{Caller}'): {Reason}", context.Request.Method, Payments.ServiceDefaults.Security.RefusalLog.Shown(context.Request.Path.Value),
            context.CallerRole(), Payments.ServiceDefaults.Security.RefusalLog.Shown(context.Request.Headers[ServiceIdentityExtensions.CallerHeader].ToString()), reason);
        return answer;
    }

    /// <summary>The mode as the replication endpoint has always spelled it (lower case).</summary>
    private static string ModeName(ReplicationMode mode) => mode.ToString().ToLowerInvariant();

    private static async Task<IResult> Unavailable503(HttpContext context, Func<Task<IResult>> call)
    {
        try
        {
            return await call();
        }
        catch (LedgerUnavailableException exception)
        {
            // The ledger's own words (contention, a region's state): what the caller's retry is for, nothing of etcd's.
            context.Response.Headers.RetryAfter = "1";
            return Results.Problem(exception.Message, statusCode: StatusCodes.Status503ServiceUnavailable, type: ProblemTypes.ServiceUnavailable,
                title: "The service is temporarily unavailable.");
        }
        catch (Grpc.Core.RpcException exception) when (exception.StatusCode is Grpc.Core.StatusCode.Unavailable or Grpc.Core.StatusCode.DeadlineExceeded
            or Grpc.Core.StatusCode.Internal or Grpc.Core.StatusCode.Unknown or Grpc.Core.StatusCode.ResourceExhausted)
        {
            // etcd still unavailable after the store's own retries, or out of space (NOSPACE: ResourceExhausted, not
            // retried; the storage maintenance recovers it, docs/runbooks/etcd-nospace.md): the caller's retry (same
            // ids) is safe; a 500 said the ledger was broken. etcd's words (addresses, members) stay in this service's log, not in the answer.
            context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("Payments.Ledger.Api").LogWarning(
                "Ledger answered 503 for {Method} {Path}: etcd {Status} ({Detail})", context.Request.Method,
                Payments.ServiceDefaults.Security.RefusalLog.Shown(context.Request.Path.Value), exception.StatusCode, exception.Status.Detail);
            context.Response.Headers.RetryAfter = "1";
            return Results.Problem("The ledger's store is not answering; retry with the same ids.", statusCode: StatusCodes.Status503ServiceUnavailable,
                type: ProblemTypes.ServiceUnavailable, title: "The service is temporarily unavailable.");
        }
        catch (TimeoutException exception)
        {
            // Sync replication: committed here, not yet durable in Cosmos, so not acknowledged. The retry (same ids)
            // replays the write and waits for its shipping again.
            context.Response.Headers.RetryAfter = "1";
            return Results.Problem(exception.Message, statusCode: StatusCodes.Status503ServiceUnavailable, type: ProblemTypes.ReplicationPending,
                title: "The write is not yet replicated to the other region.");
        }
        catch (RegionNotWritableException exception)
        {
            // Nothing was written. The caller retries with the same ids: here once this region is active again, or in
            // the region that now is (its clients are routed there by the global load balancer).
            context.Response.Headers.RetryAfter = "1";
            return Results.Problem(exception.Message, statusCode: StatusCodes.Status503ServiceUnavailable, type: ProblemTypes.RegionNotWritable,
                title: "This region does not accept writes now.");
        }
    }
}

/// <summary>How far this region's journal shipping is: the last sequence in Cosmos DB and the lag.</summary>
public sealed record ReplicationProgress(string Mode, long ShippedSequence, long LagMilliseconds);

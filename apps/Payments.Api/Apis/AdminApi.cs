using Payments.Api.Contracts;
using Payments.Api.Limits;
using Payments.Api.Problems;
using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Merchants;
using Payments.ServiceDefaults.Security;
using Payments.Api.OpenApi;

namespace Payments.Api.Apis;

/// <summary>The operator's API for merchants and their keys (<c>/admin/v1</c>): every route needs the operator's
/// token (<see cref="OperatorAuthentication"/>), never a merchant key, and every change is written to the audit log
/// with the operator. It is not routed by the public edge; on Kubernetes it is reached inside the cluster.</summary>
public static class AdminApi
{
    /// <summary>Rotation overlap when the request names none: a day to roll the new key out.</summary>
    public static readonly TimeSpan DefaultRotationOverlap = TimeSpan.FromHours(24);

    public static void MapAdminApiV1(this IEndpointRouteBuilder app)
    {
        var admin = app.MapGroup("/admin/v1").WithTags("Admin").WithGroupName(ApiDocumentation.AdminDocument).AddEndpointFilter<OperatorAuthentication>()
            .AddEndpointFilter(Payments.Api.Regions.RegionWriteGate.AdminWritesAsync)
            .WithDescription("The operator's API (Authorization: Bearer <operator token>; merchant keys are refused). Not routed by the public edge.");
        admin.MapPost("/merchants", CreateMerchantAsync).WithName("CreateMerchant")
            .JsonBody<CreateMerchantRequest>().Produces<MerchantResponse>(StatusCodes.Status201Created).LocationOfCreated("merchant").Produces<MerchantResponse>().Problems(400, 409, 413, 415);
        admin.MapGet("/merchants/{merchantId}", async (string merchantId, MerchantStore store, CancellationToken cancellationToken) =>
            await store.GetMerchantAsync(merchantId, cancellationToken) is { } merchant
                ? Reply.Json(StatusCodes.Status200OK, ToResponse(merchant)).ToResult()
                : MerchantNotFound(merchantId).ToResult()).WithName("GetMerchant").Produces<MerchantResponse>().Problems(404);
        admin.MapPost("/merchants/{merchantId}/keys", IssueKeyAsync).WithName("IssueApiKey")
            .JsonBody<IssueKeyRequest>(required: false).Produces<IssuedKeyResponse>(StatusCodes.Status201Created).Problems(400, 404, 409, 413, 415);
        admin.MapGet("/merchants/{merchantId}/keys", async (string merchantId, MerchantStore store, CancellationToken cancellationToken) =>
            await store.ListKeysAsync(merchantId, cancellationToken) is { } keys
                ? Reply.Json(StatusCodes.Status200OK, new ApiKeyList([.. keys.Select(key => ToResponse(key.Record, key.LastUsedAt))])).ToResult()
                : MerchantNotFound(merchantId).ToResult()).WithName("ListApiKeys").Produces<ApiKeyList>().Problems(404);
        admin.MapPost("/merchants/{merchantId}/keys/{keyId}/rotate", RotateKeyAsync).WithName("RotateApiKey")
            .JsonBody<RotateKeyRequest>(required: false).Produces<IssuedKeyResponse>(StatusCodes.Status201Created).Problems(400, 404, 409, 413, 415);
        admin.MapDelete("/merchants/{merchantId}/keys/{keyId}", RevokeKeyAsync).WithName("RevokeApiKey").Produces(StatusCodes.Status204NoContent).Problems(400, 404, 413, 415);
        admin.MapPost("/keys/revoke", RevokePresentedKeyAsync).WithName("RevokePresentedApiKey")
            .JsonBody<RevokePresentedKeyRequest>().Produces(StatusCodes.Status204NoContent).Problems(400, 404, 413, 415);
        // By the merchant's own account id (two merchants may use the same one), or by the ledger id.
        admin.MapPut("/merchants/{merchantId}/accounts/{accountId}/overdraft", SetMerchantOverdraftAsync).WithName("SetMerchantOverdraftLimit")
            .JsonBody<SetOverdraftRequest>().Produces<AccountResponse>().Problems(400, 404, 413, 415, 422);
        admin.MapPut("/accounts/{accountId}/overdraft", SetOverdraftAsync).WithName("SetOverdraftLimit")
            .JsonBody<SetOverdraftRequest>().Produces<AccountResponse>().Problems(400, 404, 413, 415, 422);
    }

    /// <summary><see cref="SetOverdraftAsync"/> for the account <paramref name="merchantId"/> knows as
    /// <paramref name="accountId"/>, wherever the ledger keeps it (AccountId's remarks).</summary>
    private static async Task<IResult> SetMerchantOverdraftAsync(
        string merchantId, string accountId, HttpContext context, MerchantStore store, ILedger ledger, MoneyLimits limits, ILogger<MerchantStore> audit)
    {
        // The body first: a bad one is 400 whichever account it names (and nothing is looked up for it).
        var (limit, invalid) = await ReadLimitAsync(context);
        if (invalid is not null)
        {
            return invalid.ToResult();
        }

        // An unknown merchant is named as such: "no account for this merchant" sent operators looking for an account.
        if (!MerchantRecord.IsValidId(merchantId) || await store.GetMerchantAsync(merchantId, context.RequestAborted) is null)
        {
            return MerchantNotFound(merchantId).ToResult();
        }

        if (!AccountId.TryParse(accountId, out _, out _))
        {
            return Reply.AccountNotFound(accountId).ToResult();
        }

        var facts = await store.AccountFactsAsync(AccountsApi.LedgerCandidates(merchantId, [accountId]), context.RequestAborted);
        return AccountsApi.Owned(merchantId, [accountId], facts)[0] is { } ledgerId
            ? await ApplyOverdraftAsync(ledgerId.Value, limit, context, ledger, limits, audit)
            : Reply.AccountNotFound(accountId).ToResult();
    }

    /// <summary>The operator's overdraft decision (merchants cannot give themselves one), within the currency's
    /// configured maximum, as one atomic ledger write; audit-logged. <paramref name="accountId"/> is the ledger id:
    /// the merchant's account id, or <c>{merchant}~{id}</c> for one whose id another merchant opened first.</summary>
    private static async Task<IResult> SetOverdraftAsync(
        string accountId, HttpContext context, ILedger ledger, MoneyLimits limits, ILogger<MerchantStore> audit)
    {
        var (limit, invalid) = await ReadLimitAsync(context);
        return invalid is not null ? invalid.ToResult() : await ApplyOverdraftAsync(accountId, limit, context, ledger, limits, audit);
    }

    /// <summary>The limit the body asks for: present and not negative, or the problem with it.</summary>
    private static async Task<(long Limit, Reply? Problem)> ReadLimitAsync(HttpContext context)
    {
        var (request, problem) = await ReadAsync(context, new SetOverdraftRequest(null));
        return problem is not null ? (0, problem)
            : request!.OverdraftLimitMinor is not { } limit ? (0, Reply.Invalid(new Dictionary<string, string> { ["overdraftLimitMinor"] = "overdraftLimitMinor is required." }))
            : limit < 0 ? (0, Reply.Invalid(new Dictionary<string, string> { ["overdraftLimitMinor"] = "overdraftLimitMinor must not be negative." }))
            : (limit, null);
    }

    private static async Task<IResult> ApplyOverdraftAsync(
        string accountId, long limit, HttpContext context, ILedger ledger, MoneyLimits limits, ILogger<MerchantStore> audit)
    {
        if (!AccountId.TryParseLedger(accountId, out var id, out _))
        {
            return Reply.LedgerAccountNotFound(accountId).ToResult();
        }

        var reply = await Overdrafts.SetAsync(ledger, limits, id, limit, context.RequestAborted);
        if (reply.StatusCode == StatusCodes.Status200OK)
        {
            audit.LogInformation("Admin: overdraft limit of account {AccountId} set to {OverdraftLimitMinor} by {Operator}",
                accountId, limit, OperatorAuthentication.CallerOf(context));
        }

        return reply.ToResult();
    }

    private static async Task<IResult> CreateMerchantAsync(HttpContext context, MerchantStore store, ILogger<MerchantStore> audit)
    {
        var (request, problem) = await ReadAsync(context, new CreateMerchantRequest(null, null));
        if (problem is not null)
        {
            return problem.ToResult();
        }

        var errors = new Dictionary<string, string>();
        if (!MerchantRecord.IsValidId(request!.MerchantId))
        {
            errors["merchantId"] = "merchantId is 1–64 letters, digits, '-' or '_', starting with a letter or digit.";
        }

        // Shown back to operators and in logs: no control or invisible characters, as for a payment's reference; and
        // still at most MaxNameLength UTF-16 units, as stored records always were.
        Validate.Text("name", request.Name, MerchantRecord.MaxNameLength, errors);
        if (request.Name is { Length: > MerchantRecord.MaxNameLength })
        {
            errors["name"] = $"name must be at most {MerchantRecord.MaxNameLength} UTF-16 code units (an emoji counts two); this one has {request.Name.Length}.";
        }
        else if (request.Name is not null && string.IsNullOrWhiteSpace(request.Name))
        {
            // Stored as given, "" was a name no one could read, and it took the place of the first real one (a probe).
            errors["name"] = "name must not be empty or blank; leave it out for a merchant without one.";
        }

        if (errors.Count > 0)
        {
            return Reply.Invalid(errors).ToResult();
        }

        // Read first only to say in the audit log when an unnamed merchant is given its name (a probe: that change
        // left no line, though every change of the operator's is logged).
        var before = request.Name is null ? null : await store.GetMerchantAsync(request.MerchantId!, context.RequestAborted);
        var (merchant, created) = await store.CreateMerchantAsync(request.MerchantId!, request.Name, context.RequestAborted);
        if (!created && !string.Equals(merchant.Name, request.Name, StringComparison.Ordinal))
        {
            return Reply.Problem(StatusCodes.Status409Conflict, ProblemTypes.MerchantExists, "This merchant exists with another name.",
                $"Merchant '{merchant.MerchantId}' exists " + (merchant.Name is null ? "without a name" : $"named '{merchant.Name}'") + "; nothing was changed.").ToResult();
        }

        if (created)
        {
            audit.LogInformation("Admin: merchant {MerchantId} created by {Operator}", merchant.MerchantId, OperatorAuthentication.CallerOf(context));
            context.Response.Headers.Location = "/admin/v1/merchants/" + Uri.EscapeDataString(merchant.MerchantId); // RFC 9110 15.3.2, as the public 201s
        }
        else if (before is { Name: null } && merchant.Name is not null)
        {
            audit.LogInformation("Admin: merchant {MerchantId} named by {Operator}", merchant.MerchantId, OperatorAuthentication.CallerOf(context));
        }

        return Reply.Json(created ? StatusCodes.Status201Created : StatusCodes.Status200OK, ToResponse(merchant)).ToResult();
    }

    private static async Task<IResult> IssueKeyAsync(string merchantId, HttpContext context, MerchantStore store, ILogger<MerchantStore> audit)
    {
        var (request, problem) = await ReadAsync(context, new IssueKeyRequest(null));
        if (problem is not null)
        {
            return problem.ToResult();
        }

        var scopes = request!.Scopes ?? ApiScopes.Default;
        if (scopes.Count == 0 || scopes.Any(scope => scope is null || !ApiScopes.IsKnown(scope)))
        {
            return Reply.Invalid(new Dictionary<string, string>
            {
                ["scopes"] = "scopes must be a non-empty list of: " + string.Join(", ", ApiScopes.All) + ".",
            }).ToResult();
        }

        var (result, issued) = await store.IssueKeyAsync(merchantId, scopes, context.RequestAborted);
        if (issued is not null)
        {
            audit.LogInformation("Admin: key {KeyId} issued to merchant {MerchantId} with scopes {Scopes} by {Operator}",
                issued.Record.KeyId, merchantId, string.Join(' ', issued.Record.Scopes), OperatorAuthentication.CallerOf(context));
        }

        return Issued(merchantId, null, result, issued, DateTimeOffset.MaxValue).ToResult();
    }

    private static async Task<IResult> RotateKeyAsync(string merchantId, string keyId, HttpContext context, MerchantStore store, ILogger<MerchantStore> audit)
    {
        var (request, problem) = await ReadAsync(context, new RotateKeyRequest(null));
        if (problem is not null)
        {
            return problem.ToResult();
        }

        var maxSeconds = (long)MerchantStore.MaxRotationOverlap.TotalSeconds;
        if (request!.OverlapSeconds is < 0 || request.OverlapSeconds > maxSeconds)
        {
            return Reply.Invalid(new Dictionary<string, string>
            {
                ["overlapSeconds"] = $"overlapSeconds must be between 0 and {maxSeconds} (7 days).",
            }).ToResult();
        }

        var overlap = request.OverlapSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : DefaultRotationOverlap;
        var (result, issued) = await store.RotateKeyAsync(merchantId, keyId, overlap, context.RequestAborted);
        if (result == KeyAdminResult.Done && issued is not null)
        {
            audit.LogInformation("Admin: key {KeyId} of merchant {MerchantId} rotated to {NewKeyId} (old key valid {Overlap} more) by {Operator}",
                keyId, merchantId, issued.Record.KeyId, overlap, OperatorAuthentication.CallerOf(context));
        }

        return Issued(merchantId, keyId, result, issued, context.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow()).ToResult();
    }

    private static async Task<IResult> RevokeKeyAsync(string merchantId, string keyId, HttpContext context, MerchantStore store, ILogger<MerchantStore> audit)
    {
        if (await RequestBody.NoFieldsProblemAsync(context) is { } refused)
        {
            return refused.ToResult();
        }

        var result = await store.RevokeKeyAsync(merchantId, keyId, context.RequestAborted);
        if (result != KeyAdminResult.Done)
        {
            return KeyNotFound(merchantId, keyId).ToResult();
        }

        audit.LogInformation("Admin: key {KeyId} of merchant {MerchantId} revoked by {Operator}", keyId, merchantId, OperatorAuthentication.CallerOf(context));
        return Results.NoContent();
    }

    /// <summary>Revokes a key named by itself (<see cref="MerchantStore.RevokePresentedKeyAsync"/>): for a leaked key, and
    /// the only way to end a key issued before keys had records to a merchant whose id predates the id check. The audit
    /// log names the key's id and merchant, never the key.</summary>
    private static async Task<IResult> RevokePresentedKeyAsync(HttpContext context, MerchantStore store, ILogger<MerchantStore> audit)
    {
        var (request, problem) = await ReadAsync(context, new RevokePresentedKeyRequest(null));
        if (problem is not null)
        {
            return problem.ToResult();
        }

        if (request!.ApiKey?.Trim() is not { Length: > 0 and <= MaxPresentedKeyLength } key) // trimmed, as a request's key is read
        {
            return Reply.Invalid(new Dictionary<string, string> { ["apiKey"] = $"apiKey must be the key to revoke, at most {MaxPresentedKeyLength} characters." }).ToResult();
        }

        if (await store.RevokePresentedKeyAsync(key, context.RequestAborted) is not { } revoked)
        {
            return Reply.Problem(StatusCodes.Status404NotFound, ProblemTypes.ApiKeyNotFound, "API key not found.",
                "No live key is the one sent (it was never issued, or was revoked or has expired).").ToResult();
        }

        audit.LogInformation("Admin: key {KeyId} of merchant {MerchantId} revoked by the key itself by {Operator}",
            revoked.KeyId, revoked.MerchantId, OperatorAuthentication.CallerOf(context));
        return Results.NoContent();
    }

    /// <summary>Longer than any key issued (a prefix and 43 characters).</summary>
    private const int MaxPresentedKeyLength = 200;

    /// <summary>An admin body is optional (an empty POST takes the defaults) but, when sent, strict JSON.</summary>
    private static async Task<(T? Value, Reply? Problem)> ReadAsync<T>(HttpContext context, T empty)
        where T : class
    {
        var (bytes, problem) = await RequestBody.ReadOptionalAsync(context);
        return problem is not null ? (null, problem) : bytes is null ? (empty, null) : RequestBody.Parse<T>(bytes);
    }

    private static Reply Issued(string merchantId, string? keyId, KeyAdminResult result, IssuedApiKey? issued, DateTimeOffset now) => result switch
    {
        KeyAdminResult.Done => Reply.Json(StatusCodes.Status201Created, new IssuedKeyResponse(issued!.Key, ToResponse(issued.Record, null))),
        KeyAdminResult.MerchantNotFound => MerchantNotFound(merchantId),
        KeyAdminResult.KeyLimitReached => Reply.Problem(StatusCodes.Status409Conflict, ProblemTypes.ApiKeyLimitReached, "The merchant holds as many keys as it may.",
            $"A merchant holds at most {MerchantStore.MaxKeysPerMerchant} keys (rotated keys count until their overlap ends); revoke one first."),
        KeyAdminResult.KeyAlreadyRotated => Reply.Problem(StatusCodes.Status409Conflict, ProblemTypes.ApiKeyAlreadyRotated, "The key was rotated already.",
            $"Key '{Reply.Echo(keyId ?? string.Empty)}' was rotated {(issued!.Record.SuccessorId is { } successor ? $"to '{successor}'" : "before")} and "
            + (issued.Record.ExpiresAt > now
                ? $"works until {issued.Record.ExpiresAt:O}; rotate its successor instead, or revoke this key to end it now."
                : $"ended at {issued.Record.ExpiresAt:O}; rotate its successor instead.")),
        _ => KeyNotFound(merchantId, keyId ?? string.Empty),
    };

    private static Reply MerchantNotFound(string merchantId) =>
        Reply.Problem(StatusCodes.Status404NotFound, ProblemTypes.MerchantNotFound, "Merchant not found.", $"No merchant '{Reply.Echo(merchantId)}'.");

    private static Reply KeyNotFound(string merchantId, string keyId) =>
        Reply.Problem(StatusCodes.Status404NotFound, ProblemTypes.ApiKeyNotFound, "API key not found.",
            $"Merchant '{Reply.Echo(merchantId)}' has no key '{Reply.Echo(keyId)}' (or it was revoked or has expired).");

    private static MerchantResponse ToResponse(MerchantRecord merchant) => new(merchant.MerchantId, merchant.Name, merchant.CreatedAt);

    private static ApiKeyResponse ToResponse(ApiKeyRecord record, DateTimeOffset? lastUsedAt) =>
        new(record.KeyId, record.Prefix, record.Last4, record.Scopes, record.CreatedAt, record.ExpiresAt, lastUsedAt);
}

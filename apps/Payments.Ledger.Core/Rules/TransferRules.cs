using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core.Retention;
using Payments.Ledger.Core.Storage;

namespace Payments.Ledger.Core.Rules;

/// <summary>Applies transfer requests to a <see cref="WorkingSet"/> in memory: every business rule of the ledger lives
/// here, with no I/O, so the rules are the same for single transfers and batches and easy to read in one place.</summary>
internal sealed partial class TransferRules(LedgerKeys keys, WorkingSet set, DateTimeOffset now, JournalRetentionOptions retention)
{
    /// <summary>The longest hold a pending transfer may place.</summary>
    public static readonly TimeSpan MaxHoldTimeout = TimeSpan.FromDays(30);

    public Evaluated Evaluate(TransferRequest request, int batchIndex)
    {
        var transferKey = keys.Transfer(request.Id);
        var existing = set.Get(transferKey, LedgerJson.DecodeTransfer);
        if (existing.State == LookupState.Unknown)
        {
            return new Evaluated.NeedsKeys();
        }

        if (existing.State == LookupState.Found)
        {
            return Replay(request, existing.Value!, transferKey);
        }

        if (OutsideReplayWindow(request) is { } stale)
        {
            return stale;
        }

        var outcome = request switch
        {
            TransferRequest.Single single => Payout(single, batchIndex),
            TransferRequest.Pending pending => Hold(pending, batchIndex),
            TransferRequest.PostPending post => Resolve(post.Id, post.PendingId, TransferKind.PostPending, batchIndex),
            TransferRequest.VoidPending cancel => Resolve(cancel.Id, cancel.PendingId, TransferKind.VoidPending, batchIndex),
            ExpirePendingRequest expire => Resolve(expire.Id, expire.PendingId, TransferKind.ExpirePending, batchIndex),
            _ => throw new ArgumentOutOfRangeException(nameof(request), request.GetType().Name, "Unknown transfer request."),
        };
        if (outcome is Evaluated.New created)
        {
            set.Put(transferKey, created.Record);
        }

        return outcome;
    }

    private Evaluated Replay(TransferRequest request, TransferRecord existing, string transferKey)
    {
        var replay = new Evaluated.Replay(existing, set.ReadModRevisionOrThrow(transferKey));
        var same = request switch
        {
            TransferRequest.Single single => existing.Kind == TransferKind.Single && SameMove(existing, single.DebitAccountId, single.CreditAccountId, single.Amount, single.Reference),
            TransferRequest.Pending pending => existing.Kind == TransferKind.Pending && SameMove(existing, pending.DebitAccountId, pending.CreditAccountId, pending.Amount, pending.Reference),
            TransferRequest.PostPending post => existing.Kind == TransferKind.PostPending && existing.PendingId == post.PendingId.Value,
            TransferRequest.VoidPending cancel => existing.Kind == TransferKind.VoidPending && existing.PendingId == cancel.PendingId.Value,
            ExpirePendingRequest expire => existing.Kind == TransferKind.ExpirePending && existing.PendingId == expire.PendingId.Value,
            _ => false,
        };
        // Not which fields: the API's role may not read transfers, and a deposit reusing a saga's id told it the
        // saga's kind and amount (a probe).
        return same
            ? replay
            : new Evaluated.Rejected(new LedgerError(
                LedgerError.TransferIdReuse, $"Transfer {request.Id} was already applied with other fields."));
    }

    /// <summary>A new transfer issued before the replay window (its id may have been archived: applying it could be a
    /// second application) or implausibly far in the future (it would stay inside the window too long).</summary>
    private Evaluated? OutsideReplayWindow(TransferRequest request)
    {
        if (request.IssuedAt is not { } issued)
        {
            return null;
        }

        if (issued < now - retention.ReplayWindow)
        {
            return Reject(LedgerError.TransferTooOld,
                $"Transfer {request.Id} was issued at {issued:O}, before the ledger's replay window of {retention.ReplayWindow}; "
                + "its id may have been archived, so it cannot be applied again. Nothing was applied.");
        }

        return issued > now + retention.MaxIssuedAhead
            ? Reject(LedgerError.IssuedInFuture, $"Transfer {request.Id} claims to be issued at {issued:O}, more than {retention.MaxIssuedAhead} ahead of the ledger's clock.")
            : null;
    }

    private static bool SameMove(TransferRecord existing, AccountId debit, AccountId credit, Money amount, string? reference) =>
        existing.DebitAccountId == debit.Value && existing.CreditAccountId == credit.Value
        && existing.AmountMinor == amount.AmountMinor && existing.Currency == amount.Currency.Code
        && string.Equals(existing.Reference, reference, StringComparison.Ordinal);

    /// <summary>A single transfer; one that names its funding hold is checked against it first (<see cref="Unfunded"/>),
    /// so a refusal puts nothing that later transfers of a group commit would be evaluated on.
    /// <para>A payout out of a hold uses the hold's shard of in-transit, where the post brought the money (by its own id,
    /// each payment left +amount in one shard and -amount in another: a drift without bound).</para></summary>
    private Evaluated Payout(TransferRequest.Single single, int batchIndex)
    {
        var shardBy = single.FundedByHold ?? single.Id;
        switch (single.FundedByHold is { } holdId ? Unfunded(single, holdId) : null)
        {
            case Evaluated.NeedsKeys needs:
                // Ask for the accounts in the same read round as the hold (nothing is put for an unknown key).
                _ = (LoadAccount(single.DebitAccountId, shardBy), LoadAccount(single.CreditAccountId, shardBy));
                return needs;
            case { } refused:
                return refused;
            default:
                return Move(single.Id, single.FundedByHold, TransferKind.Single, single.DebitAccountId, single.CreditAccountId, single.Amount, single.Reference, null, batchIndex);
        }
    }

    private Evaluated Hold(TransferRequest.Pending pending, int batchIndex)
    {
        var longest = retention.MaxHoldTimeout(MaxHoldTimeout);
        var timeout = pending.Timeout ?? longest;
        if (timeout <= TimeSpan.Zero || timeout > longest)
        {
            return Reject(LedgerError.InvalidTimeout, $"A hold's timeout must be more than 0 and at most {longest}.");
        }

        // A void that found no hold left a bar under the id (HoldBars): this may be the hold it voided, arriving late.
        var bar = set.Get(keys.Hold(pending.Id), LedgerJson.DecodeHold);
        if (bar.State == LookupState.Unknown)
        {
            _ = (LoadAccount(pending.DebitAccountId, pending.Id), LoadAccount(pending.CreditAccountId, pending.Id)); // same read round
            return new Evaluated.NeedsKeys();
        }

        if (bar.State == LookupState.Found)
        {
            return Reject(LedgerError.PendingTransferAlreadyVoided,
                $"Pending transfer {pending.Id} was voided by {bar.Value!.ResolvedBy} before it was placed; it can no longer be placed. Nothing was applied.");
        }

        var timeoutAt = (now + timeout).ToUnixTimeMilliseconds();
        var outcome = Move(pending.Id, fundedBy: null, TransferKind.Pending, pending.DebitAccountId, pending.CreditAccountId, pending.Amount, pending.Reference, timeoutAt, batchIndex);
        if (outcome is Evaluated.New)
        {
            set.Put(keys.Hold(pending.Id), new HoldRecord(pending.Id.Value, HoldStatus.Pending, timeoutAt, null));
            set.Put(keys.Expiry(timeoutAt, pending.Id), string.Empty);
        }

        return outcome;
    }

    /// <summary>A single transfer (money moves) or the first phase of a pending one (money is reserved); a payout
    /// <paramref name="fundedBy"/> a hold uses that hold's system account shard, and its record names the hold so that
    /// a replay (the standby's) uses it too.</summary>
    private Evaluated Move(
        TransferId id, TransferId? fundedBy, TransferKind kind, AccountId debitId, AccountId creditId, Money amount, string? reference, long? timeoutAt, int batchIndex)
    {
        if (amount.AmountMinor <= 0)
        {
            return Reject(LedgerError.InvalidAmount, "The amount must be a positive number of minor units.");
        }

        if (debitId == creditId)
        {
            return Reject(LedgerError.SameAccount, "Debit and credit account must differ.");
        }

        var shardBy = fundedBy ?? id;
        var debit = LoadAccount(debitId, shardBy);
        var credit = LoadAccount(creditId, shardBy);
        if (debit.Outcome is not null || credit.Outcome is not null)
        {
            return debit.Outcome ?? credit.Outcome!;
        }

        if ((Unusable(debit.Record!, amount) ?? Unusable(credit.Record!, amount)) is { } problem)
        {
            return problem;
        }

        var (debitDelta, creditDelta) = Postings.Of(kind, amount.AmountMinor);
        if (PutPosting(debit.Key, debit.Record!, debitDelta, credit.Key, credit.Record!, creditDelta, amount.AmountMinor, checkOverdraft: true) is { } refused)
        {
            return refused;
        }

        return new Evaluated.New(new TransferRecord(
            id.Value, kind, debitId.Value, creditId.Value, amount.AmountMinor, amount.Currency.Code, null, timeoutAt, reference, now, batchIndex, fundedBy?.Value));
    }

    /// <summary>Puts both accounts as the posting leaves them, or returns why it may not: the debtor would be
    /// overdrawn (new debits only), or a record would leave its bounds (<see cref="LedgerLimits"/>, or 64 bits). On a
    /// refusal nothing is put.</summary>
    private Evaluated.Rejected? PutPosting(
        string debitKey, AccountRecord debit, Balances debitDelta, string creditKey, AccountRecord credit, Balances creditDelta, long amountMinor, bool checkOverdraft)
    {
        AccountRecord newDebit, newCredit;
        try
        {
            newDebit = debit.Plus(debitDelta);
            newCredit = credit.Plus(creditDelta);
            if (checkOverdraft && newDebit.IsOverdrawn)
            {
                var available = debit.BalanceMinor - debit.PendingDebitMinor;
                return Reject(LedgerError.InsufficientFunds,
                    $"Account {debit.Id} has {available} {debit.Currency} available (overdraft limit {newDebit.OverdraftLimitMinor}); {amountMinor} requested.");
            }
        }
        catch (OverflowException)
        {
            return Reject(LedgerError.BalanceOverflow, "The transfer would overflow a balance.");
        }

        if ((LedgerLimits.Exceeded(newDebit) ?? LedgerLimits.Exceeded(newCredit)) is { } exceeded)
        {
            return new Evaluated.Rejected(exceeded);
        }

        set.Put(debitKey, newDebit);
        set.Put(creditKey, newCredit);
        return null;
    }

    /// <summary>The second phase: post moves the held amount, void and expiry release it.</summary>
    private Evaluated Resolve(TransferId id, TransferId pendingId, TransferKind kind, int batchIndex)
    {
        if (LookupHold(pendingId) is not { } found)
        {
            return new Evaluated.NeedsKeys();
        }

        if (found is not ({ } pending, { } hold))
        {
            return Reject(LedgerError.PendingTransferNotFound, $"No pending transfer {pendingId}.");
        }

        if (Unresolvable(hold, pendingId, kind) is { } refused)
        {
            return refused;
        }

        var debit = LoadAccount(AccountId.FromStorage(pending.DebitAccountId), pendingId, requireOpen: false);
        var credit = LoadAccount(AccountId.FromStorage(pending.CreditAccountId), pendingId, requireOpen: false);
        if (debit.Outcome is not null || credit.Outcome is not null)
        {
            return debit.Outcome ?? credit.Outcome!;
        }

        // Releasing a hold only lowers the pending amounts the hold raised, so a void or an expiry is never refused
        // here. A post also moves the balance, which can meet a limit (a system shard's, or 64 bits): refused before
        // the pivot, the saga then voids the hold.
        var (debitDelta, creditDelta) = Postings.Of(kind, pending.AmountMinor);
        if (PutPosting(debit.Key, debit.Record!, debitDelta, credit.Key, credit.Record!, creditDelta, pending.AmountMinor, checkOverdraft: false) is { } limited)
        {
            return limited;
        }

        set.Put(keys.Hold(pendingId), hold.Resolved(kind, id.Value));
        if (hold.TimeoutAtUnixMs is { } indexed)
        {
            set.Delete(keys.Expiry(indexed, pendingId));
        }

        return new Evaluated.New(new TransferRecord(
            id.Value, kind, pending.DebitAccountId, pending.CreditAccountId, pending.AmountMinor, pending.Currency, pendingId.Value,
            pending.TimeoutAtUnixMs, pending.Reference, now, batchIndex));
    }

    /// <summary>A hold's pending transfer and hold record, read in one round: null while either key is still to be
    /// read; a pending transfer that is not a hold, or a missing record, comes back null inside.</summary>
    private (TransferRecord? Pending, HoldRecord? Hold)? LookupHold(TransferId holdId)
    {
        var pendingLookup = set.Get(keys.Transfer(holdId), LedgerJson.DecodeTransfer);
        var holdLookup = set.Get(keys.Hold(holdId), LedgerJson.DecodeHold);
        if (pendingLookup.State == LookupState.Unknown || holdLookup.State == LookupState.Unknown)
        {
            return null;
        }

        return (pendingLookup.Value is { Kind: TransferKind.Pending } pending ? pending : null, holdLookup.Value);
    }

    /// <summary>Why the hold cannot be resolved this way now (already resolved, past its timeout for a post, not yet
    /// due for an expiry), or null when it can.</summary>
    private Evaluated? Unresolvable(HoldRecord hold, TransferId pendingId, TransferKind kind)
    {
        switch (hold.Status)
        {
            case HoldStatus.Posted:
                return Reject(LedgerError.PendingTransferAlreadyPosted, $"Pending transfer {pendingId} was already posted by {hold.ResolvedBy}.");
            case HoldStatus.Voided:
                return Reject(LedgerError.PendingTransferAlreadyVoided, $"Pending transfer {pendingId} was already voided by {hold.ResolvedBy}.");
            case HoldStatus.Expired:
                return Reject(LedgerError.PendingTransferExpired, $"Pending transfer {pendingId} expired.");
        }

        var due = hold.TimeoutAtUnixMs is { } timeoutAt && now.ToUnixTimeMilliseconds() >= timeoutAt;
        return kind switch
        {
            TransferKind.PostPending when due => Reject(
                LedgerError.PendingTransferExpired, $"Pending transfer {pendingId} passed its timeout and can no longer be posted."),
            TransferKind.ExpirePending when !due => Reject(LedgerError.InvalidTimeout, $"Pending transfer {pendingId} is not due to expire yet."),
            _ => null,
        };
    }

    private (string Key, AccountRecord? Record, Evaluated? Outcome) LoadAccount(AccountId id, TransferId shardBy, bool requireOpen = true)
    {
        if (id.IsSystem)
        {
            var shardKey = keys.SystemShard(id, shardBy);
            var shard = set.Get(shardKey, LedgerJson.DecodeAccount);
            return shard.State switch
            {
                LookupState.Unknown => (shardKey, null, new Evaluated.NeedsKeys()),
                LookupState.Found => (shardKey, shard.Value, null),
                // System accounts exist implicitly, one set per currency, each shard created on first use.
                _ => (shardKey, new AccountRecord(id.Value, SystemCurrency(id), 0, Unlimited: true, Closed: false, 0, 0, 0), null),
            };
        }

        var key = keys.Account(id);
        var account = set.Get(key, LedgerJson.DecodeAccount);
        return account.State switch
        {
            LookupState.Unknown => (key, null, new Evaluated.NeedsKeys()),
            LookupState.Absent => (key, null, Reject(LedgerError.AccountNotFound, $"No account {id}.")),
            _ when requireOpen && account.Value!.Closed => (key, null, Reject(LedgerError.AccountClosed, $"Account {id} is closed.")),
            _ => (key, account.Value, null),
        };
    }

    private static Evaluated? Unusable(AccountRecord account, Money amount) =>
        account.Currency == amount.Currency.Code
            ? null
            : Reject(LedgerError.CurrencyMismatch, $"Account {account.Id} holds {account.Currency}, not {amount.Currency}.");

    internal static string SystemCurrency(AccountId id) => id.Value[(id.Value.LastIndexOf('.') + 1)..];

    private static Evaluated.Rejected Reject(string code, string detail) => new(new LedgerError(code, detail));
}

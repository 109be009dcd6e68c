using Payments.Domain;
using Payments.Ledger.Core.Model;

namespace Payments.Ledger.Core.Storage;

/// <summary>The pending transfer's hold, voided by the expiry sweep. Internal: only the sweep may expire holds.</summary>
internal sealed record ExpirePendingRequest(TransferId Id, TransferId PendingId) : TransferRequest(Id);

/// <summary>What evaluation decided for one transfer.</summary>
internal abstract record Evaluated
{
    private Evaluated()
    {
    }

    /// <summary>Will be written by this transaction at <paramref name="Record"/>.BatchIndex.</summary>
    public sealed record New(TransferRecord Record) : Evaluated;

    /// <summary>Applied before with the same fields; <paramref name="ModRevision"/> is when.</summary>
    public sealed record Replay(TransferRecord Record, long ModRevision) : Evaluated;

    public sealed record Rejected(LedgerError Error) : Evaluated;

    /// <summary>A key it needs has not been read yet.</summary>
    public sealed record NeedsKeys : Evaluated;
}

/// <summary>Applies transfer requests to a <see cref="WorkingSet"/> in memory: every business rule of the ledger lives
/// here, with no I/O, so the rules are the same for single transfers and batches and easy to read in one place.</summary>
internal sealed class TransferEvaluator(LedgerKeys keys, WorkingSet set, DateTimeOffset now)
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

        var outcome = request switch
        {
            TransferRequest.Single single => Move(single.Id, TransferKind.Single, single.DebitAccountId, single.CreditAccountId, single.Amount, single.Reference, null, batchIndex),
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
        return same
            ? replay
            : new Evaluated.Rejected(new LedgerError(
                LedgerError.TransferIdReuse, $"Transfer {request.Id} was already applied with other fields ({existing.Kind} of {existing.AmountMinor} {existing.Currency})."));
    }

    private static bool SameMove(TransferRecord existing, AccountId debit, AccountId credit, Money amount, string? reference) =>
        existing.DebitAccountId == debit.Value && existing.CreditAccountId == credit.Value
        && existing.AmountMinor == amount.AmountMinor && existing.Currency == amount.Currency.Code
        && string.Equals(existing.Reference, reference, StringComparison.Ordinal);

    private Evaluated Hold(TransferRequest.Pending pending, int batchIndex)
    {
        var timeout = pending.Timeout ?? MaxHoldTimeout;
        if (timeout <= TimeSpan.Zero || timeout > MaxHoldTimeout)
        {
            return Reject(LedgerError.InvalidTimeout, $"A hold's timeout must be more than 0 and at most {MaxHoldTimeout.TotalDays} days.");
        }

        var timeoutAt = (now + timeout).ToUnixTimeMilliseconds();
        var outcome = Move(pending.Id, TransferKind.Pending, pending.DebitAccountId, pending.CreditAccountId, pending.Amount, pending.Reference, timeoutAt, batchIndex);
        if (outcome is Evaluated.New)
        {
            set.Put(keys.Hold(pending.Id), new HoldRecord(pending.Id.Value, HoldStatus.Pending, timeoutAt, null));
            set.Put(keys.Expiry(timeoutAt, pending.Id), string.Empty);
        }

        return outcome;
    }

    /// <summary>A single transfer (money moves) or the first phase of a pending one (money is reserved).</summary>
    private Evaluated Move(
        TransferId id, TransferKind kind, AccountId debitId, AccountId creditId, Money amount, string? reference, long? timeoutAt, int batchIndex)
    {
        if (amount.AmountMinor <= 0)
        {
            return Reject(LedgerError.InvalidAmount, "The amount must be a positive number of minor units.");
        }

        if (debitId == creditId)
        {
            return Reject(LedgerError.SameAccount, "Debit and credit account must differ.");
        }

        var debit = LoadAccount(debitId, id);
        var credit = LoadAccount(creditId, id);
        if (debit.Outcome is not null || credit.Outcome is not null)
        {
            return debit.Outcome ?? credit.Outcome!;
        }

        if ((Unusable(debit.Record!, amount) ?? Unusable(credit.Record!, amount)) is { } problem)
        {
            return problem;
        }

        try
        {
            var pending = kind == TransferKind.Pending;
            var newDebit = pending
                ? debit.Record! with { PendingDebitMinor = checked(debit.Record!.PendingDebitMinor + amount.AmountMinor) }
                : debit.Record! with { BalanceMinor = checked(debit.Record!.BalanceMinor - amount.AmountMinor) };
            var newCredit = pending
                ? credit.Record! with { PendingCreditMinor = checked(credit.Record!.PendingCreditMinor + amount.AmountMinor) }
                : credit.Record! with { BalanceMinor = checked(credit.Record!.BalanceMinor + amount.AmountMinor) };
            if (!newDebit.Unlimited && checked(newDebit.BalanceMinor - newDebit.PendingDebitMinor) < -newDebit.OverdraftLimitMinor)
            {
                var available = debit.Record!.BalanceMinor - debit.Record.PendingDebitMinor;
                return Reject(LedgerError.InsufficientFunds,
                    $"Account {debitId} has {available} {amount.Currency} available (overdraft limit {newDebit.OverdraftLimitMinor}); {amount.AmountMinor} requested.");
            }

            set.Put(debit.Key, newDebit);
            set.Put(credit.Key, newCredit);
        }
        catch (OverflowException)
        {
            return Reject(LedgerError.BalanceOverflow, "The transfer would overflow a balance.");
        }

        return new Evaluated.New(new TransferRecord(
            id.Value, kind, debitId.Value, creditId.Value, amount.AmountMinor, amount.Currency.Code, null, timeoutAt, reference, now, batchIndex));
    }

    /// <summary>The second phase: post moves the held amount, void and expiry release it.</summary>
    private Evaluated Resolve(TransferId id, TransferId pendingId, TransferKind kind, int batchIndex)
    {
        var pendingLookup = set.Get(keys.Transfer(pendingId), LedgerJson.DecodeTransfer);
        var holdLookup = set.Get(keys.Hold(pendingId), LedgerJson.DecodeHold);
        if (pendingLookup.State == LookupState.Unknown || holdLookup.State == LookupState.Unknown)
        {
            return new Evaluated.NeedsKeys();
        }

        if (pendingLookup.Value is not { Kind: TransferKind.Pending } pending || holdLookup.Value is not { } hold)
        {
            return Reject(LedgerError.PendingTransferNotFound, $"No pending transfer {pendingId}.");
        }

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
        if (kind == TransferKind.PostPending && due)
        {
            return Reject(LedgerError.PendingTransferExpired, $"Pending transfer {pendingId} passed its timeout and can no longer be posted.");
        }

        if (kind == TransferKind.ExpirePending && !due)
        {
            return Reject(LedgerError.InvalidTimeout, $"Pending transfer {pendingId} is not due to expire yet.");
        }

        var debitId = AccountId.FromStorage(pending.DebitAccountId);
        var creditId = AccountId.FromStorage(pending.CreditAccountId);
        var debit = LoadAccount(debitId, pendingId, requireOpen: false);
        var credit = LoadAccount(creditId, pendingId, requireOpen: false);
        if (debit.Outcome is not null || credit.Outcome is not null)
        {
            return debit.Outcome ?? credit.Outcome!;
        }

        var amount = pending.AmountMinor;
        var post = kind == TransferKind.PostPending;
        set.Put(debit.Key, debit.Record! with
        {
            PendingDebitMinor = debit.Record!.PendingDebitMinor - amount,
            BalanceMinor = post ? debit.Record.BalanceMinor - amount : debit.Record.BalanceMinor,
        });
        set.Put(credit.Key, credit.Record! with
        {
            PendingCreditMinor = credit.Record!.PendingCreditMinor - amount,
            BalanceMinor = post ? credit.Record.BalanceMinor + amount : credit.Record.BalanceMinor,
        });
        var status = kind switch
        {
            TransferKind.PostPending => HoldStatus.Posted,
            TransferKind.VoidPending => HoldStatus.Voided,
            _ => HoldStatus.Expired,
        };
        set.Put(keys.Hold(pendingId), hold with { Status = status, ResolvedBy = id.Value });
        if (hold.TimeoutAtUnixMs is { } indexed)
        {
            set.Delete(keys.Expiry(indexed, pendingId));
        }

        return new Evaluated.New(new TransferRecord(
            id.Value, kind, pending.DebitAccountId, pending.CreditAccountId, amount, pending.Currency, pendingId.Value, pending.TimeoutAtUnixMs, pending.Reference, now, batchIndex));
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

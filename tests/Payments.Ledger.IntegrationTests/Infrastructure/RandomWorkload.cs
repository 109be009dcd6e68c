using System.Collections.Concurrent;
using System.Diagnostics;
using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core;
using Payments.Testing;

namespace Payments.Ledger.IntegrationTests.Infrastructure;

/// <summary>Random single and two-phase transfers, posts, voids, deposits and replays from many concurrent workers,
/// recording what the ledger reported, so the journal can be checked against it afterwards.</summary>
public sealed class RandomWorkload(EtcdLedger ledger, int seed)
{
    public const int AccountsPerCurrency = 12;
    public const long InitialDepositMinor = 100_000;
    public const int MaxOperationsPerWorker = 50_000;
    private static readonly Currency[] Currencies = [Currency.Usd, Currency.Eur];

    private readonly List<AccountId> accounts = [];
    private readonly Dictionary<AccountId, Currency> currencyOf = [];

    /// <summary>Every transfer the ledger reported as newly applied (not a replay).</summary>
    public ConcurrentDictionary<TransferId, TransferRequest> Applied { get; } = new();

    /// <summary>Transfers whose outcome is unknown (the ledger gave up while etcd was unavailable).</summary>
    public ConcurrentDictionary<TransferId, TransferRequest> Unknown { get; } = new();

    public ConcurrentDictionary<string, int> FailuresByCode { get; } = new();

    public int Replays => replays;

    private int replays;

    public async Task SetUpAsync(CancellationToken cancellationToken)
    {
        foreach (var currency in Currencies)
        {
            for (var index = 0; index < AccountsPerCurrency; index++)
            {
                var id = AccountId.Parse($"acct-{currency.Code.ToLowerInvariant()}-{index:D2}");
                // Every third account may go into overdraft, to exercise the limit as well as the zero floor.
                var opened = await ledger.OpenAccountAsync(id, currency, index % 3 == 0 ? 5_000 : 0, cancellationToken);
                Assert.IsType<OpenAccountOutcome.Opened>(opened);
                accounts.Add(id);
                currencyOf[id] = currency;
                var deposit = new TransferRequest.Single(
                    TransferId.Parse($"setup-{id}"), AccountId.ExternalFunding(currency), id, new Money(InitialDepositMinor, currency));
                Record(deposit, await ledger.TransferAsync(deposit, cancellationToken), isRetry: false);
            }
        }
    }

    public Task RunAsync(int workers, TimeSpan duration, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        return RunAsync(workers, () => clock.Elapsed < duration, cancellationToken);
    }

    /// <summary>Runs until <paramref name="keepRunning"/> says stop (each worker also stops at <see cref="MaxOperationsPerWorker"/>).</summary>
    public async Task RunAsync(int workers, Func<bool> keepRunning, CancellationToken cancellationToken) =>
        await Task.WhenAll(Enumerable.Range(0, workers).Select(worker => Task.Run(
            () => WorkerAsync(worker, keepRunning, cancellationToken), cancellationToken)));

    /// <summary>Re-submits every transfer whose outcome was unknown, with its original id: each now applies, replays or
    /// fails for a business reason, and never applies twice.</summary>
    public async Task ResolveUnknownAsync(CancellationToken cancellationToken)
    {
        foreach (var (id, request) in Unknown)
        {
            // A transfer that committed before the client gave up is found now and replayed: it did apply, once.
            var outcome = await ledger.TransferAsync(request, cancellationToken);
            if (outcome is TransferOutcome.Applied)
            {
                Applied.TryAdd(id, request);
            }
            else
            {
                Record(request, outcome, isRetry: false);
            }

            Unknown.TryRemove(id, out _);
        }
    }

    private async Task WorkerAsync(int worker, Func<bool> running, CancellationToken cancellationToken)
    {
        var random = new Random(seed + worker);
        var myPending = new List<TransferId>();
        var mine = new List<TransferRequest>();
        for (var operation = 0; operation < MaxOperationsPerWorker && running(); operation++)
        {
            var request = Next(random, worker, operation, myPending, mine);
            var isRetry = Applied.ContainsKey(request.Id);
            TransferOutcome outcome;
            try
            {
                outcome = await ledger.TransferAsync(request, cancellationToken);
            }
            catch (LedgerUnavailableException)
            {
                Unknown[request.Id] = request;
                continue;
            }

            Record(request, outcome, isRetry);
            if (outcome is TransferOutcome.Applied && !isRetry)
            {
                mine.Add(request);
                if (request is TransferRequest.Pending)
                {
                    myPending.Add(request.Id);
                }
                else if (request is TransferRequest.PostPending or TransferRequest.VoidPending)
                {
                    myPending.Remove(PendingOf(request));
                }
            }
        }
    }

    private TransferRequest Next(Random random, int worker, int operation, List<TransferId> myPending, List<TransferRequest> mine)
    {
        var id = TransferId.Parse($"w{worker:D2}-{operation:D6}");
        var roll = random.Next(100);
        if (roll < 5 && mine.Count > 0)
        {
            return mine[random.Next(mine.Count)]; // a client retry of something already applied
        }

        if (roll < 25 && myPending.Count > 0)
        {
            var pending = myPending[random.Next(myPending.Count)];
            return roll < 18 ? new TransferRequest.PostPending(id, pending) : new TransferRequest.VoidPending(id, pending);
        }

        var debit = accounts[random.Next(accounts.Count)];
        var currency = currencyOf[debit];
        var sameCurrency = accounts.Where(account => currencyOf[account] == currency && account != debit).ToArray();
        var credit = sameCurrency[random.Next(sameCurrency.Length)];
        var amount = new Money(random.Next(1, 30_000), currency);
        return roll switch
        {
            < 30 => new TransferRequest.Single(id, AccountId.ExternalFunding(currency), credit, amount),
            < 65 => new TransferRequest.Single(id, debit, credit, amount),
            _ => new TransferRequest.Pending(id, debit, credit, amount, TimeSpan.FromHours(1)),
        };
    }

    private void Record(TransferRequest request, TransferOutcome outcome, bool isRetry)
    {
        switch (outcome)
        {
            case TransferOutcome.Applied applied when isRetry:
                Assert.True(applied.Replayed, $"{request.Id} was applied again on a retry");
                Interlocked.Increment(ref replays);
                break;
            case TransferOutcome.Applied:
                // A first submission may come back as a replay when its own lost-response attempt had committed.
                Assert.True(Applied.TryAdd(request.Id, request), $"{request.Id} was reported newly applied twice");
                break;
            case TransferOutcome.Failed failed:
                Assert.False(isRetry, $"{request.Id} was applied before, but its retry failed with {failed.Error}");
                FailuresByCode.AddOrUpdate(failed.Error.Code, 1, (_, count) => count + 1);
                break;
        }
    }

    private static TransferId PendingOf(TransferRequest request) => request switch
    {
        TransferRequest.PostPending post => post.PendingId,
        TransferRequest.VoidPending cancel => cancel.PendingId,
        _ => throw new ArgumentOutOfRangeException(nameof(request)),
    };

    /// <summary>Every transfer reported applied is in the journal, and the journal holds nothing else.</summary>
    public void AssertJournalMatches(Payments.Ledger.Core.Invariants.LedgerSnapshot report)
    {
        Assert.Empty(Unknown);
        var journalIds = report.Journal.Select(entry => entry.TransferId).ToHashSet();
        var missing = Applied.Keys.Where(id => !journalIds.Contains(id)).ToArray();
        Assert.True(missing.Length == 0, $"Reported applied but missing from the journal: {string.Join(", ", missing.Take(10))}");
        var unexpected = journalIds.Where(id => !Applied.ContainsKey(id)).ToArray();
        Assert.True(unexpected.Length == 0, $"In the journal but never reported applied: {string.Join(", ", unexpected.Take(10))}");
    }

    public string Summary() =>
        $"applied {Applied.Count}, replays {Replays}, failures {string.Join(", ", FailuresByCode.Select(pair => $"{pair.Key} {pair.Value}"))}";
}

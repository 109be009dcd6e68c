using System.Text.Json;
using Payments.Domain;
using Payments.Ledger.Contracts;

namespace Payments.Ledger.Tests;

/// <summary>What crosses the service boundary comes back as the same request and the same outcome.</summary>
public sealed class LedgerWireTests
{
    private static readonly AccountId Alice = AccountId.Parse("alice");
    private static readonly AccountId InTransit = AccountId.InTransit(Currency.Eur);
    private static readonly DateTimeOffset Issued = DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_123);

    public static TheoryData<TransferRequest> Requests => new()
    {
        new TransferRequest.Single(TransferId.Parse("t1"), Alice, InTransit, new Money(1250, Currency.Eur), "ref") { IssuedAt = Issued },
        new TransferRequest.Pending(TransferId.Parse("t2"), Alice, InTransit, new Money(5, Currency.Eur), TimeSpan.FromMinutes(15), null) { IssuedAt = Issued },
        new TransferRequest.Pending(TransferId.Parse("t3"), Alice, InTransit, new Money(5, Currency.Eur), null, null) { IssuedAt = Issued },
        new TransferRequest.PostPending(TransferId.Parse("t4"), TransferId.Parse("t2")) { IssuedAt = Issued },
        new TransferRequest.VoidPending(TransferId.Parse("t5"), TransferId.Parse("t2")) { IssuedAt = Issued },
    };

    [Theory]
    [MemberData(nameof(Requests))]
    public void Request_SurvivesTheWire(TransferRequest request)
    {
        var json = JsonSerializer.Serialize(LedgerWire.ToWire(request));
        var back = LedgerWire.FromWire(JsonSerializer.Deserialize<TransferWire>(json)!, out var problem);
        Assert.Null(problem);
        Assert.Equal(request, back);
    }

    [Fact]
    public void Outcomes_SurviveTheWire()
    {
        var entry = new JournalEntry(2561, TransferId.Parse("t1"), TransferKind.Single, Alice, InTransit, new Money(1250, Currency.Eur), null, null, "ref", DateTimeOffset.UnixEpoch);
        TransferOutcome applied = new TransferOutcome.Applied(TransferId.Parse("t1"), entry, Replayed: true);
        TransferOutcome failed = new TransferOutcome.Failed(TransferId.Parse("t2"), new LedgerError(LedgerError.InsufficientFunds, "short"));

        foreach (var outcome in new[] { applied, failed })
        {
            var json = JsonSerializer.Serialize(LedgerWire.ToWire(outcome));
            Assert.Equal(outcome, LedgerWire.FromWire(JsonSerializer.Deserialize<OutcomeWire>(json)!));
        }
    }

    [Theory]
    [InlineData("@treasury.EUR")]
    [InlineData("a/b")]
    [InlineData("")]
    public void MalformedAccountIds_AreRefused_NotTrusted(string account)
    {
        var wire = new TransferWire("single", "t1", account, "alice", 5, "EUR", null, null, null, Issued.ToUnixTimeMilliseconds());
        Assert.Null(LedgerWire.FromWire(wire, out var problem));
        Assert.False(string.IsNullOrEmpty(problem));
    }

    [Fact]
    public void ATransferWithoutItsIssueTime_IsRefusedOnBothSides()
    {
        // Without it a retry after the ledger archived the transfer could be applied again (ADR 0004).
        var request = new TransferRequest.Single(TransferId.Parse("t1"), Alice, InTransit, new Money(5, Currency.Eur));
        Assert.Throws<ArgumentException>(() => LedgerWire.ToWire(request));
        var wire = new TransferWire("single", "t1", "alice", InTransit.Value, 5, "EUR", null, null, null);
        Assert.Null(LedgerWire.FromWire(wire, out var problem));
        Assert.Contains("issuedAtUnixMs is required", problem, StringComparison.Ordinal);
    }
}

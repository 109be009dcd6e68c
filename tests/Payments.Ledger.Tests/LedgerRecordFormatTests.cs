using Payments.Ledger.Contracts;
using Payments.Ledger.Core.Storage;

namespace Payments.Ledger.Tests;

/// <summary>What the ledger stores: no derived fields and no nulls (every byte goes to each member's log and
/// database and to every watcher), and the records written before that change still read the same.</summary>
public sealed class LedgerRecordFormatTests
{
    private static readonly AccountRecord Account = new("acct-1", "USD", 500, false, false, 999_999_900, 100, 0);

    private static readonly TransferRecord Transfer = new(
        "xfer-1", TransferKind.Single, "acct-1", "acct-2", 100, "USD", null, null, null, DateTimeOffset.Parse("2026-12-04T10:00:00Z"), 0);

    [Fact]
    public void AnAccount_IsStoredWithoutItsDerivedFields_AndReadsBack()
    {
        var stored = LedgerJson.Encode(Account).ToStringUtf8();

        Assert.DoesNotContain("balances", stored, StringComparison.Ordinal);
        Assert.DoesNotContain("isOverdrawn", stored, StringComparison.Ordinal);
        Assert.Equal(Account, LedgerJson.DecodeAccount(LedgerJson.Encode(Account)));
    }

    [Fact]
    public void ATransfer_IsStoredWithoutNulls_AndReadsBack()
    {
        var stored = LedgerJson.Encode(Transfer).ToStringUtf8();

        Assert.DoesNotContain("null", stored, StringComparison.Ordinal);
        Assert.Equal(Transfer, LedgerJson.DecodeTransfer(LedgerJson.Encode(Transfer)));
        var held = Transfer with { Kind = TransferKind.Pending, PendingId = "hold-1", TimeoutAtUnixMs = 1_800_000_000_000, Reference = "r" };
        Assert.Equal(held, LedgerJson.DecodeTransfer(LedgerJson.Encode(held)));
    }

    [Fact]
    public void RecordsWrittenBefore_WithDerivedFieldsAndNulls_ReadTheSame()
    {
        const string OldAccount = """{"id":"acct-1","currency":"USD","overdraftLimitMinor":500,"unlimited":false,"closed":false,"balanceMinor":999999900,"pendingDebitMinor":100,"pendingCreditMinor":0,"balances":{"balanceMinor":999999900,"pendingDebitMinor":100,"pendingCreditMinor":0},"isOverdrawn":false}""";
        const string OldTransfer = """{"id":"xfer-1","kind":"Single","debitAccountId":"acct-1","creditAccountId":"acct-2","amountMinor":100,"currency":"USD","pendingId":null,"timeoutAtUnixMs":null,"reference":null,"appliedAt":"2026-12-04T10:00:00+00:00","batchIndex":0}""";

        Assert.Equal(Account, LedgerJson.DecodeAccount(Google.Protobuf.ByteString.CopyFromUtf8(OldAccount)));
        Assert.Equal(Transfer, LedgerJson.DecodeTransfer(Google.Protobuf.ByteString.CopyFromUtf8(OldTransfer)));
        Assert.True(LedgerJson.Encode(Account).Length < OldAccount.Length * 2 / 3);
    }
}

using System.Globalization;
using Payments.Orchestrator.Client.Models;

namespace Payments.Orchestrator.Tests;

/// <summary>The approval deadline the API and the orchestrator are configured with (both call
/// <see cref="PaymentInput.CheckApprovalTimeout"/> at start-up), read as configuration binding reads a TimeSpan.</summary>
public sealed class ApprovalTimeoutTests
{
    [Theory]
    [InlineData("1.00:00:00")]
    [InlineData("23:59:59")]
    [InlineData("5.00:00:00")]
    [InlineData("00:05:00")]
    public void ADeadlineWithinTheLedgersReplayWindow_IsAccepted(string configured)
    {
        var value = TimeSpan.Parse(configured, CultureInfo.InvariantCulture);

        Assert.Equal(value, PaymentInput.CheckApprovalTimeout(value));
    }

    [Theory]
    [InlineData("24:00:00")] // 24 days, not hours: the chart's old default
    [InlineData("5.00:00:01")]
    [InlineData("00:00:00")]
    [InlineData("-01:00:00")]
    public void ADeadlineTheLedgerCouldNotHonour_IsRefused_NamingTheHoursPitfall(string configured)
    {
        var value = TimeSpan.Parse(configured, CultureInfo.InvariantCulture);

        var refused = Assert.Throws<InvalidOperationException>(() => PaymentInput.CheckApprovalTimeout(value));
        Assert.Contains("Payments:ApprovalTimeout", refused.Message, StringComparison.Ordinal);
        Assert.Contains("\"24:00:00\" means 24 days", refused.Message, StringComparison.Ordinal);
    }
}

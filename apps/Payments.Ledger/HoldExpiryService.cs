using Payments.Ledger.Core;
using Payments.Ledger.Core.Expiry;

namespace Payments.Ledger;

/// <summary>Runs the hold-expiry sweep. Any number of ledger replicas may run it: one at a time holds the fenced
/// lock, and each expiry is a compare-and-swap anyway.</summary>
internal sealed class HoldExpiryService(EtcdLedger ledger, ILoggerFactory loggers) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        new HoldExpirySweeper(ledger, $"{Environment.MachineName}-{Environment.ProcessId}", loggers.CreateLogger<HoldExpirySweeper>())
            .RunAsync(HoldExpirySweeper.DefaultInterval, stoppingToken);
}

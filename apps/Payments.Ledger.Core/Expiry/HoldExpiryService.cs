using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Payments.Ledger.Core.Expiry;

/// <summary>Runs the hold-expiry sweep for the life of the host. Any number of replicas may run it: one at a time
/// holds the fenced lock, and each expiry is a compare-and-swap anyway.</summary>
public sealed class HoldExpiryService(EtcdLedger ledger, ILoggerFactory loggers) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        new HoldExpirySweeper(ledger, $"{Environment.MachineName}-{Environment.ProcessId}", loggers.CreateLogger<HoldExpirySweeper>())
            .RunAsync(HoldExpirySweeper.DefaultInterval, stoppingToken);
}

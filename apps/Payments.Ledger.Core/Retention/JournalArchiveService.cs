using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Payments.Ledger.Core.Retention;

/// <summary>Runs the journal archiver for the life of the host (every replica may: one at a time holds its lock).</summary>
/// <param name="replicatedThrough">The journal sequence durable outside etcd (the shipper's): nothing newer leaves etcd.</param>
public sealed class JournalArchiveService(EtcdLedger ledger, Func<long> replicatedThrough, ILoggerFactory loggers) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        new JournalArchiver(ledger, replicatedThrough, $"{Environment.MachineName}-{Environment.ProcessId}", loggers.CreateLogger<JournalArchiver>())
            .RunAsync(ledger.Retention.Interval, stoppingToken);
}

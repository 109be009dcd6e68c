using Payments.Merchants;

namespace Payments.Api.Security;

/// <summary>Keeps this replica's key cache true (the etcd watch that evicts revoked and rotated keys) and writes
/// when keys were last used, once per <see cref="MerchantStore.UsageFlushInterval"/>.</summary>
internal sealed class ApiKeyUpkeep(MerchantStore store, TimeProvider time, ILogger<ApiKeyUpkeep> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var watching = store.RunInvalidationAsync(logger, stoppingToken);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await Task.Delay(MerchantStore.UsageFlushInterval, time, stoppingToken);
                try
                {
                    await store.FlushUsageAsync(stoppingToken);
                }
                catch (Grpc.Core.RpcException exception)
                {
                    // Usage is informational: an etcd outage delays it to the next flush.
                    logger.LogDebug(exception, "Could not record API key usage; trying again at the next flush");
                }
                catch (Exception exception) when (!stoppingToken.IsCancellationRequested)
                {
                    // Anything else too (an exception leaving here stopped the API replica), but said louder.
                    logger.LogWarning(exception, "Could not record API key usage; trying again at the next flush");
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping.
        }

        await watching;
    }
}

using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Payments.ServiceDefaults;

/// <summary>Asks an app's readiness check in the background, one call at a time, and keeps the last answer for
/// <c>/readyz</c>: readiness requests then cost nothing, however many arrive (issue 12: <c>/readyz</c> read etcd on
/// every call). Not ready until the first check has answered yes; a check that fails or outlasts
/// <see cref="Timeout"/> counts as not ready.</summary>
public sealed class ReadinessProbe
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(3);
    private volatile bool ready;

    public bool IsReady => ready;

    /// <summary>Starts the loop; it ends when the application stops.</summary>
    public static ReadinessProbe Start(IServiceProvider services, Func<IServiceProvider, CancellationToken, Task<bool>> isReady)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(isReady);
        var probe = new ReadinessProbe();
        var stopping = services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
        // The wall clock on purpose: a test's fake clock must not freeze readiness.
        _ = Task.Run(() => probe.RunAsync(services, isReady, TimeProvider.System, stopping), CancellationToken.None);
        return probe;
    }

    private async Task RunAsync(IServiceProvider services, Func<IServiceProvider, CancellationToken, Task<bool>> isReady, TimeProvider time, CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(stopping))
            {
                timeout.CancelAfter(Timeout);
                try
                {
                    ready = await isReady(services, timeout.Token);
                }
                catch (Exception) when (!stopping.IsCancellationRequested)
                {
                    // Any failure of the check means "not ready"; the next round asks again.
                    ready = false;
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                catch (ObjectDisposedException)
                {
                    return; // the host disposed its services under a check while stopping
                }
            }

            try
            {
                await Task.Delay(Interval, time, stopping);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}

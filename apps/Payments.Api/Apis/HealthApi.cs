using Etcdserverpb;
using Payments.Etcd;

namespace Payments.Api.Apis;

public static class HealthApi
{
    public static void MapHealthEndpoints(this IEndpointRouteBuilder app)
    {
        // Liveness: the process serves requests. Never depends on etcd: a restart would not fix etcd.
        app.MapGet("/healthz", () => Results.Text("ok")).ExcludeFromDescription();

        // Readiness: etcd answers, so writes can succeed. (The region's passive state joins this in the DR work.)
        app.MapGet("/readyz", async (EtcdConnection etcd, CancellationToken cancellationToken) =>
        {
            try
            {
                await EtcdConnection.CallAsync(
                    token => etcd.Kv.RangeAsync(new RangeRequest { Key = EtcdBytes.Key("/daprpayments/readyz"), Limit = 1 }, cancellationToken: token),
                    cancellationToken);
                return Results.Text("ready");
            }
            catch (Exception exception) when (exception is Grpc.Core.RpcException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                return Results.Text("etcd unreachable", statusCode: StatusCodes.Status503ServiceUnavailable);
            }
        }).ExcludeFromDescription();
    }
}

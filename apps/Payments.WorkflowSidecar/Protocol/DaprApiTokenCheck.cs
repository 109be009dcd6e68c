using System.Security.Cryptography;
using System.Text;

namespace Payments.WorkflowSidecar.Protocol;

/// <summary>What daprd does with <c>DAPR_API_TOKEN</c> set (dapr.io/api-token-secret on Kubernetes): every call must
/// carry that token in <c>dapr-api-token</c>, which the Dapr SDK sends from the app's own <c>DAPR_API_TOKEN</c>
/// (Dapr.Common DaprClientUtilities.ConfigureGrpcCallOptions, used by the workflow client and worker alike). Without
/// it any process on the machine could start, raise events to or terminate payment workflows. A refusal is a
/// trailers-only gRPC answer, <c>UNAUTHENTICATED</c>, as daprd gives.</summary>
internal static class DaprApiTokenCheck
{
    public const string Header = "dapr-api-token";
    private const int Unauthenticated = 16;

    public static Func<HttpContext, RequestDelegate, Task> For(string token)
    {
        ArgumentException.ThrowIfNullOrEmpty(token);
        var expected = SHA256.HashData(Encoding.UTF8.GetBytes(token));
        return (context, next) =>
        {
            // Compared as hashes: equal length, so the time taken says nothing of the token's length or prefix.
            var presented = SHA256.HashData(Encoding.UTF8.GetBytes(context.Request.Headers[Header].ToString()));
            if (CryptographicOperations.FixedTimeEquals(presented, expected))
            {
                return next(context);
            }

            context.Response.StatusCode = StatusCodes.Status200OK;
            context.Response.ContentType = "application/grpc";
            context.Response.Headers["grpc-status"] = Unauthenticated.ToString(System.Globalization.CultureInfo.InvariantCulture);
            context.Response.Headers["grpc-message"] = "missing or wrong dapr-api-token";
            return Task.CompletedTask;
        };
    }
}

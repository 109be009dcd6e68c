using System.Text;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.Timeouts;
using Payments.Domain;
using Payments.ServiceDefaults;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.LoadBalancing;

namespace Payments.Edge.Extensions;

/// <summary>A real load balancer in front of the API replicas (YARP): round robin over replicas that are ready, a
/// replica whose connections fail is taken out after a few failures in a row (passive check, counting only failures
/// that are the replica's: <see cref="DestinationFailuresPolicy"/>) and /readyz is probed (active check). It does
/// not retry a request itself: a payment request that may have reached a dying replica is retried by the client with
/// the same Idempotency-Key, which is what makes it safe (the API answers the first outcome again).</summary>
public static class EdgeExtensions
{
    private const string ProxyTimeoutPolicy = "proxy";
    private const string StatusWaitTimeoutPolicy = "status-wait";

    public static void AddEdge(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = (builder.Configuration.GetSection("Edge").Get<EdgeOptions>() ?? new EdgeOptions()).Validate();
        var backends = options.ParseBackends();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false; // says nothing of what serves
            kestrel.Limits.MaxConcurrentConnections = options.MaxConnections;
            kestrel.Limits.KeepAliveTimeout = options.KeepAliveTimeout;
            var perAddress = new ConnectionsPerAddress(
                options.MaxConnectionsPerAddress, kestrel.ApplicationServices.GetRequiredService<ILoggerFactory>().CreateLogger("Payments.Edge.Connections"));
            kestrel.ConfigureEndpointDefaults(listen => listen.Use(perAddress.Middleware));
        });
        builder.Services.AddSingleton(options);
        var route = new RouteConfig
        {
            RouteId = "api", ClusterId = "api", Match = new RouteMatch { Path = "{**path}" }, TimeoutPolicy = ProxyTimeoutPolicy,
        };
        // A client waiting on a payment's status (GET ?wait=, up to 30 s) is given that much longer; every other
        // request keeps the short bound, so a frozen replica costs a client one short timeout.
        var statusWait = new RouteConfig
        {
            RouteId = "api-status-wait", ClusterId = "api", Order = -1, TimeoutPolicy = StatusWaitTimeoutPolicy,
            Match = new RouteMatch
            {
                Path = "/v1/payments/{paymentId}", Methods = ["GET", "HEAD"], // HEAD waits like GET (the API answers it)
                QueryParameters = [new RouteQueryParameter { Name = "wait", Mode = QueryParameterMatchMode.Exists }],
            },
        };
        builder.Services.AddRequestTimeouts(timeouts =>
        {
            timeouts.AddPolicy(ProxyTimeoutPolicy, TimeoutPolicy(options.RequestTimeout));
            timeouts.AddPolicy(StatusWaitTimeoutPolicy, TimeoutPolicy(options.RequestTimeout + EdgeOptions.MaxStatusWait));
        });
        builder.Services.AddReverseProxy().LoadFromMemory([route, statusWait], [Cluster(options, backends)]);
        builder.Services.AddSingleton<IPassiveHealthCheckPolicy, DestinationFailuresPolicy>();
    }

    /// <summary>The edge's bound on a request. What the timeout middleware itself answers is a request whose body did
    /// not arrive in time (the edge reads every body before it forwards it, <see cref="LimitBodyAsync"/>): the
    /// client's, 408 problem+json. A replica that does not answer in time is answered by
    /// <see cref="ProblemWhenNotForwardedAsync"/>.</summary>
    private static RequestTimeoutPolicy TimeoutPolicy(TimeSpan timeout) => new()
    {
        Timeout = timeout,
        TimeoutStatusCode = StatusCodes.Status408RequestTimeout,
        WriteTimeoutResponse = context => Results.Problem(
            $"The request's body did not arrive within {timeout.TotalSeconds:0} s.", statusCode: StatusCodes.Status408RequestTimeout,
            type: ProblemTypes.ForStatus(StatusCodes.Status408RequestTimeout), title: "Request Timeout").ExecuteAsync(context),
    };

    public static void UseEdge(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var backends = app.Services.GetRequiredService<EdgeOptions>().ParseBackends();
        // The edge's own answers (413, 408, 503, 404) are kept by no cache and read as nothing but their type, as the
        // API's are; a forwarded answer carries the API's own headers and is left as it is.
        app.Use((context, next) =>
        {
            context.Response.OnStarting(() =>
            {
                var headers = context.Response.Headers;
                if (string.IsNullOrEmpty(headers.CacheControl))
                {
                    headers.CacheControl = "no-store";
                }

                if (string.IsNullOrEmpty(headers.XContentTypeOptions))
                {
                    headers.XContentTypeOptions = "nosniff";
                }

                return Task.CompletedTask;
            });
            return next(context);
        });
        // Anything unforeseen is a problem+json 500 with no detail, never a stack trace or a bare status.
        app.UseExceptionHandler(handler => handler.Run(context => Results.Problem(
            "Something went wrong at the edge; retry (with the same Idempotency-Key for writes).", statusCode: StatusCodes.Status500InternalServerError,
            type: ProblemTypes.InternalError, title: "Something went wrong on our side.").ExecuteAsync(context)));
        // CONNECT (which the proxy cannot forward: it answered 503, retry, with a stack trace logged) and any method
        // not spelled as the standard defines it are answered here, for every path.
        app.Use(MethodNames.RefuseUnimplementedAsync);
        app.Use(MessageFraming.RefuseFaultyAsync); // before any body is read or forwarded
        app.UseRequestTimeouts();
        app.MapHealthEndpoints(); // the edge's own liveness; matched before the catch-all route
        // The operator's admin API and the apps' metrics are reached inside the cluster, never from the internet: the
        // public edge does not route them (defence in depth: each needs its token anyway, but a probe found the metrics'
        // token guessable from outside without limit — its refusals are not the API's, which count them).
        app.Map("/admin/{**rest}", () => Results.Problem(title: "Not found.", statusCode: StatusCodes.Status404NotFound, type: ProblemTypes.NotFound));
        app.Map("/openapi/admin.json", () => Results.Problem(title: "Not found.", statusCode: StatusCodes.Status404NotFound, type: ProblemTypes.NotFound));
        app.Map("/metrics/{**rest}", () => Results.Problem(title: "Not found.", statusCode: StatusCodes.Status404NotFound, type: ProblemTypes.NotFound));
        // A custom proxy pipeline replaces YARP's default one, so its steps are named here: without UseLoadBalancing
        // every request went to a random replica (ignoring the round robin), and without UsePassiveHealthChecks a
        // replica whose connections fail was not taken out until the next active probe.
        app.MapReverseProxy(proxy =>
        {
            proxy.Use(ProblemWhenNotForwardedAsync);
            proxy.Use(RefuseNonAsciiHeadersAsync);
            proxy.Use(DropAnEmptyHost);
            proxy.Use(DropConnectionOptions);
            proxy.Use(LimitBodyAsync);
            proxy.UseSessionAffinity();
            proxy.UseLoadBalancing();
            proxy.UsePassiveHealthChecks();
        });
        app.Logger.LogInformation("Edge load balancer in front of {Count} API replicas: {Backends}", backends.Count, string.Join(", ", backends));
    }

    /// <summary>A request no replica answered — none reachable (YARP's 502), none ready (503), none in time — is
    /// answered as every other answer a client meets: problem+json, <c>service-unavailable</c>, 503 with Retry-After
    /// (docs/api.md; retried with the same Idempotency-Key it is safe). YARP leaves those statuses without a body, and
    /// reports the edge's own timeout (the route's policy, which cancels the request's token) as the client gone: a
    /// bodiless 400, which told a client whose payment may have been accepted that its request was wrong
    /// (dotnet/yarp#2662, #3037).</summary>
    private static async Task ProblemWhenNotForwardedAsync(HttpContext context, Func<Task> next)
    {
        await next();
        if (context.Response.HasStarted || context.Features.Get<Yarp.ReverseProxy.Forwarder.IForwarderErrorFeature>() is not { } error)
        {
            return;
        }

        var timedOut = error.Error == Yarp.ReverseProxy.Forwarder.ForwarderError.RequestTimedOut || DestinationFailuresPolicy.EdgeTimedOut(context);
        if (!timedOut && context.Response.StatusCode is not (StatusCodes.Status502BadGateway or StatusCodes.Status503ServiceUnavailable or StatusCodes.Status504GatewayTimeout))
        {
            return; // the client went away (YARP's 400), or a status of the API's own
        }

        // After the edge's timeout the request's token is cancelled, and the answer is written on the connection that
        // is still open: not under that token.
        context.RequestAborted = CancellationToken.None;
        context.Response.Headers.RetryAfter = "1";
        try
        {
            await Results.Problem(
                timedOut
                    ? "No API replica answered in time; retry (writes with the same Idempotency-Key)."
                    : "No API replica could take the request; retry (writes with the same Idempotency-Key).",
                statusCode: StatusCodes.Status503ServiceUnavailable, type: ProblemTypes.ServiceUnavailable, title: "The service is temporarily unavailable.")
                .ExecuteAsync(context);
        }
        catch (IOException)
        {
            // the client left meanwhile: nobody to answer
        }
    }

    /// <summary>Header values are ASCII (RFC 9110 §5.5: other octets are opaque, and the forwarding client refuses
    /// them): such a request is the caller's mistake, answered 400 here. Forwarded, it failed in the proxy as a 502 with
    /// no body, logged with a stack trace each time.</summary>
    private static async Task RefuseNonAsciiHeadersAsync(HttpContext context, Func<Task> next)
    {
        foreach (var (name, values) in context.Request.Headers)
        {
            foreach (var value in values)
            {
                if (value is not null && !Ascii.IsValid(value))
                {
                    await Results.Problem(
                        $"The value of header '{(name.Length > 64 ? name[..64] : name)}' is not ASCII; HTTP header values are ASCII (percent-encode other text).",
                        statusCode: StatusCodes.Status400BadRequest, type: ProblemTypes.MalformedRequest, title: "The request is malformed.")
                        .ExecuteAsync(context);
                    return;
                }
            }
        }

        await next();
    }

    /// <summary>An empty Host (RFC 9112 §3.2 allows it for a target without an authority) is not forwarded: YARP keeps
    /// a copied Host it takes for modified — an empty one is never the original it compares with — so the replica got
    /// an empty Host from the proxy and answered a bare 400 (a probe). Without it, the replica's own address is sent.</summary>
    private static Task DropAnEmptyHost(HttpContext context, Func<Task> next)
    {
        if (context.Request.Headers.Host is [{ Length: 0 }])
        {
            context.Request.Headers.Remove(Microsoft.Net.Http.Headers.HeaderNames.Host);
        }

        return next();
    }

    /// <summary>The fields a request's Connection header names are for the edge alone: a proxy removes them before it
    /// forwards (RFC 9110 §7.6.1). YARP drops Connection itself and the standard hop-by-hop fields, not the fields it
    /// names (dotnet/yarp#439), so they reached the API as if the client had sent them to it. The framing the edge
    /// settles itself (Host, Content-Length, Transfer-Encoding) is kept: a client cannot unframe what is forwarded.
    /// Kestrel keeps only the standard option of a value that has one ("close, X" reads "close"): X is not seen here.</summary>
    private static Task DropConnectionOptions(HttpContext context, Func<Task> next)
    {
        var headers = context.Request.Headers;
        foreach (var value in headers.Connection)
        {
            foreach (var option in (value ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                if (!FramingFields.Contains(option))
                {
                    headers.Remove(option);
                }
            }
        }

        return next();
    }

    private static readonly HashSet<string> FramingFields = new(StringComparer.OrdinalIgnoreCase)
    {
        Microsoft.Net.Http.Headers.HeaderNames.Host, Microsoft.Net.Http.Headers.HeaderNames.ContentLength, Microsoft.Net.Http.Headers.HeaderNames.TransferEncoding,
    };

    /// <summary>How much of an oversized body without a declared length is read (and dropped) before the 413 goes out,
    /// so that its client, still sending, gets the answer instead of a broken pipe. Beyond it Kestrel cuts the
    /// connection.</summary>
    private const int MaxDrainBytes = 4 * 1024 * 1024;

    /// <summary>The body limit, before anything is forwarded: a declared length over it is refused at once; any other
    /// body is read here, bounded, and forwarded with its length if it fits — never streamed into an API that would
    /// refuse it mid-upload and leave the proxy nothing but a 502. Read whole first, declared lengths too: a client
    /// sending its body slowly then runs out the edge's bound here, its own fault (408), not while forwarding, where it
    /// counted against the replica and three such requests took a healthy one out.</summary>
    private static async Task LimitBodyAsync(HttpContext context, Func<Task> next)
    {
        var limit = context.RequestServices.GetRequiredService<EdgeOptions>().MaxRequestBodyBytes;
        var request = context.Request;
        if (request.ContentLength > limit)
        {
            await TooLarge(limit).ExecuteAsync(context);
            return;
        }

        if (Payments.ServiceDefaults.TransferCodings.OtherThanChunked(request.Headers.TransferEncoding) is not null)
        {
            // Read here and forwarded with a length, the header that named the coding was dropped: refused as the API
            // refuses a compressed body (docs/api.md).
            await Results.Problem("A Transfer-Encoding other than chunked is not accepted; send the JSON as it is.",
                statusCode: StatusCodes.Status415UnsupportedMediaType, type: ProblemTypes.UnsupportedMediaType, title: "The request body must be application/json in UTF-8, uncompressed.")
                .ExecuteAsync(context);
            return;
        }

        if (context.Features.Get<IHttpRequestBodyDetectionFeature>() is { CanHaveBody: true }) // declared, chunked, or HTTP/2's
        {
            if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
            {
                size.MaxRequestBodySize = MaxDrainBytes;
            }

            byte[]? body;
            try
            {
                body = await ReadWithinAsync(request.Body, limit, context.RequestAborted);
            }
            catch (Exception unreadable) when (Payments.ServiceDefaults.UnreadableBodies.IsCallers(unreadable))
            {
                // A body Kestrel could not read (bad chunk framing, a client gone mid-upload, one too slow for the
                // minimum data rate) is the client's: its own answer, nothing forwarded. Left to propagate it was a
                // bodiless 400 and an error with a stack trace in the edge's log per request, anyone's to flood.
                await UnreadableBody(unreadable).ExecuteAsync(context);
                return;
            }

            if (body is null)
            {
                await TooLarge(limit).ExecuteAsync(context);
                return;
            }

            request.Headers.TransferEncoding = default;
            request.ContentLength = body.Length;
            request.Body = new MemoryStream(body, writable: false);
        }

        await next();
    }

    /// <summary>The whole body if it has at most <paramref name="limit"/> bytes; otherwise null, after reading the rest
    /// (dropped) up to <see cref="MaxDrainBytes"/>.</summary>
    private static async Task<byte[]?> ReadWithinAsync(Stream body, int limit, CancellationToken cancellationToken)
    {
        using var kept = new MemoryStream();
        var chunk = new byte[8192];
        long total = 0;
        int read;
        while ((read = await ReadAsync(body, chunk, cancellationToken)) > 0)
        {
            total += read;
            if (total <= limit)
            {
                kept.Write(chunk, 0, read);
            }
        }

        return total <= limit ? kept.ToArray() : null;
    }

    /// <summary>A read that treats Kestrel's own cut-off (past <see cref="MaxDrainBytes"/>) as the end of the body.</summary>
    private static async Task<int> ReadAsync(Stream body, byte[] chunk, CancellationToken cancellationToken)
    {
        try
        {
            return await body.ReadAsync(chunk, cancellationToken);
        }
        catch (BadHttpRequestException exception) when (exception.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return 0;
        }
    }

    private static IResult UnreadableBody(Exception unreadable) => Payments.ServiceDefaults.UnreadableBodies.StatusOf(unreadable) == StatusCodes.Status408RequestTimeout
        ? Results.Problem("The request's body did not arrive in time.", statusCode: StatusCodes.Status408RequestTimeout,
            type: ProblemTypes.ForStatus(StatusCodes.Status408RequestTimeout), title: "Request Timeout")
        : Results.Problem("The request's body could not be read (its framing is broken, or it ended early).", statusCode: StatusCodes.Status400BadRequest,
            type: ProblemTypes.MalformedRequest, title: "The request is malformed.");

    private static IResult TooLarge(int limit) => Results.Problem(
        $"Request bodies are limited to {limit} bytes.", statusCode: StatusCodes.Status413PayloadTooLarge,
        type: ProblemTypes.PayloadTooLarge, title: "The request body is too large.");

    private static ClusterConfig Cluster(EdgeOptions options, IReadOnlyList<Uri> backends) => new()
    {
        ClusterId = "api",
        LoadBalancingPolicy = LoadBalancingPolicies.RoundRobin,
        HealthCheck = new HealthCheckConfig
        {
            AvailableDestinationsPolicy = HealthCheckConstants.AvailableDestinations.HealthyOrPanic,
            Active = new ActiveHealthCheckConfig
            {
                Enabled = true,
                Interval = options.ProbeInterval,
                Timeout = options.ProbeTimeout,
                Policy = HealthCheckConstants.ActivePolicy.ConsecutiveFailures,
                Path = "/readyz",
            },
            Passive = new PassiveHealthCheckConfig
            {
                Enabled = true,
                Policy = DestinationFailuresPolicy.PolicyName,
                ReactivationPeriod = options.ReactivationPeriod,
            },
        },
        // One failed probe is enough to stop sending payments to a replica; a live one is back within a probe interval.
        Metadata = new Dictionary<string, string> { ["ConsecutiveFailuresHealthPolicy.Threshold"] = "1" },
        Destinations = backends.Select((uri, index) => (uri, index))
            .ToDictionary(pair => $"api-{pair.index}", pair => new DestinationConfig { Address = pair.uri.ToString() }),
    };
}

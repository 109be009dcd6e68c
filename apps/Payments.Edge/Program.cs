using Payments.Edge.Extensions;
using Payments.ServiceDefaults;

var builder = WebApplication.CreateSlimBuilder(args);
builder.AddServiceDefaults("payments-edge");
builder.IgnoreTraceContextFromOutside();
builder.AddEdge();
// YARP logs every forwarding timeout and failed probe of a replica that is away with its trace.
Payments.ServiceDefaults.Logging.ExpectedFaultLogging.SummarizeExpectedFaults(builder.Logging,
    "Yarp.ReverseProxy.Forwarder.HttpForwarder", "Yarp.ReverseProxy.Health.ActiveHealthCheckMonitor");

var app = builder.Build();
app.UseEdge();
await app.RunAsync();

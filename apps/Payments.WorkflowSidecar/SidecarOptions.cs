using System.Globalization;
using System.Net;

namespace Payments.WorkflowSidecar;

/// <summary>Command line: <c>--port N</c> (default 50001, daprd's gRPC port), <c>--retention-minutes N</c> (default 30),
/// <c>--host ADDRESS</c> (default 127.0.0.1; <c>0.0.0.0</c> in a container, where the apps reach it over the network).</summary>
internal sealed record SidecarOptions(int Port, TimeSpan FinishedRetention, TimeSpan PurgeInterval, IPAddress Host)
{
    public const int DefaultPort = 50001;
    public static readonly TimeSpan MaxRetention = TimeSpan.FromDays(1);

    public static SidecarOptions Parse(string[] args)
    {
        var options = new SidecarOptions(DefaultPort, TimeSpan.FromMinutes(30), TimeSpan.FromMinutes(1), IPAddress.Loopback);
        for (var index = 0; index + 1 < args.Length; index += 2)
        {
            if (args[index] == "--host")
            {
                options = options with { Host = IPAddress.Parse(args[index + 1]) };
                continue;
            }

            var value = int.Parse(args[index + 1], NumberStyles.None, CultureInfo.InvariantCulture);
            options = args[index] switch
            {
                "--port" when value is >= 0 and <= 65535 => options with { Port = value },
                "--retention-minutes" when value > 0 && TimeSpan.FromMinutes(value) <= MaxRetention =>
                    options with { FinishedRetention = TimeSpan.FromMinutes(value) },
                _ => throw new ArgumentException($"Unknown or out-of-range option {args[index]} {args[index + 1]}."),
            };
        }

        return options;
    }
}

using System.Globalization;

namespace Payments.Local;

/// <summary>The run command's knobs, each with a bound so a typo cannot start a run that never ends.</summary>
public sealed record DemoOptions(int Payments, int Workers, int AccountsPerCurrency, bool Serve, int ApiPort)
{
    public const int MaxPayments = 100_000;
    public const int MaxWorkers = 256;
    public const int MaxAccountsPerCurrency = 1_000;
    public const int DefaultApiPort = 8080;

    public const string Usage = """
        Usage: run.sh [--payments N] [--workers N] [--accounts N] [--serve] [--port N]
          --payments N   payments pushed through the API (default 300, at most 100000)
          --workers N    concurrent API clients (default 16, at most 256)
          --accounts N   customer accounts per currency (default 10, at most 1000)
          --serve        skip the demo batch; keep the API up until Ctrl-C and print how to call it
          --port N       the API's port on 127.0.0.1 (default 8080, or a free one if taken)
        """;

    public static DemoOptions? Parse(string[] args)
    {
        var options = new DemoOptions(300, 16, 10, Serve: false, DefaultApiPort);
        for (var index = 0; index < args.Length; index++)
        {
            if (args[index] == "--serve")
            {
                options = options with { Serve = true };
                continue;
            }

            var value = index + 1 < args.Length && int.TryParse(args[index + 1], NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) ? parsed : -1;
            switch (args[index])
            {
                case "--payments" when value is > 0 and <= MaxPayments:
                    options = options with { Payments = value };
                    break;
                case "--workers" when value is > 0 and <= MaxWorkers:
                    options = options with { Workers = value };
                    break;
                case "--accounts" when value is > 1 and <= MaxAccountsPerCurrency:
                    options = options with { AccountsPerCurrency = value };
                    break;
                case "--port" when value is > 0 and <= 65535:
                    options = options with { ApiPort = value };
                    break;
                default:
                    return null;
            }

            index++;
        }

        return options;
    }
}

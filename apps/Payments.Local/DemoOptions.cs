using System.Globalization;

namespace Payments.Local;

/// <summary>The demo's knobs, each with a bound so a typo cannot start a run that never ends.</summary>
public sealed record DemoOptions(int Payments, int Workers, int AccountsPerCurrency)
{
    public const int MaxPayments = 100_000;
    public const int MaxWorkers = 256;
    public const int MaxAccountsPerCurrency = 1_000;

    public const string Usage = """
        Usage: run.sh [--payments N] [--workers N] [--accounts N]
          --payments N   payments to push through the ledger (default 400, at most 100000)
          --workers N    concurrent clients (default 16, at most 256)
          --accounts N   customer accounts per currency (default 10, at most 1000)
        """;

    public static DemoOptions? Parse(string[] args)
    {
        var options = new DemoOptions(400, 16, 10);
        for (var index = 0; index < args.Length; index++)
        {
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
                default:
                    return null;
            }

            index++;
        }

        return options;
    }
}

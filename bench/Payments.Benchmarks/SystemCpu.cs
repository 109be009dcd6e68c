using System.Globalization;

namespace Payments.Benchmarks;

/// <summary>CPU time (user + system) spent by every process the benchmark started — the apps, the etcd members, the
/// workflow sidecar, the edge — read from Linux's <c>/proc/[pid]/stat</c>. The benchmark's own process (the clients)
/// is left out: it is the load, not the system.</summary>
public static class SystemCpu
{
    /// <summary>Processes looked at, at most (a machine has far fewer).</summary>
    private const int MaxProcesses = 100_000;

    /// <summary>Linux's USER_HZ, the unit of the times in <c>/proc/[pid]/stat</c>: 100 on every architecture .NET
    /// runs on (proc(5): "clock ticks (divide by sysconf(_SC_CLK_TCK))", which returns USER_HZ).</summary>
    private const double ClockTicksPerSecond = 100;

    /// <summary>Seconds of CPU used so far by the descendants of this process, by program (the app's assembly for a
    /// .NET process, else the command's name: etcd).</summary>
    public static IReadOnlyDictionary<string, double> DescendantSecondsByProgram()
    {
        var self = Environment.ProcessId;
        var parents = new Dictionary<int, int>();
        var ticks = new Dictionary<int, long>();
        foreach (var directory in Directory.EnumerateDirectories("/proc").Take(MaxProcesses))
        {
            if (!int.TryParse(Path.GetFileName(directory), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                || Read(Path.Combine(directory, "stat")) is not { } stat)
            {
                continue;
            }

            // After the command name (in parentheses, which may hold spaces): state, ppid, …, utime (14th field), stime (15th).
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            parents[pid] = int.Parse(fields[1], CultureInfo.InvariantCulture);
            ticks[pid] = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        }

        var byProgram = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var (pid, used) in ticks)
        {
            if (pid != self && DescendsFrom(pid, self, parents))
            {
                var program = ProgramOf(pid);
                byProgram[program] = byProgram.GetValueOrDefault(program) + (used / ClockTicksPerSecond);
            }
        }

        return byProgram;
    }

    private static string ProgramOf(int pid)
    {
        var arguments = (Read($"/proc/{pid}/cmdline") ?? string.Empty).Split('\0', StringSplitOptions.RemoveEmptyEntries);
        return arguments.FirstOrDefault(argument => argument.EndsWith(".dll", StringComparison.Ordinal)) is { } assembly
            ? Path.GetFileNameWithoutExtension(assembly)
            : arguments.Length > 0 ? Path.GetFileName(arguments[0]) : "?";
    }

    private static bool DescendsFrom(int pid, int ancestor, Dictionary<int, int> parents)
    {
        for (var depth = 0; depth < 64 && parents.TryGetValue(pid, out var parent); depth++)
        {
            if (parent == ancestor)
            {
                return true;
            }

            pid = parent;
        }

        return false;
    }

    private static string? Read(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (IOException)
        {
            return null; // the process ended meanwhile
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}

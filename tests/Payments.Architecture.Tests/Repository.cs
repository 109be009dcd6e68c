using System.Text.RegularExpressions;

namespace Payments.Architecture.Tests;

/// <summary>The checkout these tests read: its projects, their references, and the production sources.</summary>
internal static partial class Repository
{
    public static string Root { get; } = FindRoot();

    /// <summary>Production code: every app and library under apps/, and the benchmarks.</summary>
    public static IEnumerable<string> ProductionSources() =>
        new[] { "apps", "bench" }
            .SelectMany(folder => Directory.EnumerateFiles(Path.Combine(Root, folder), "*.cs", SearchOption.AllDirectories))
            .Where(path => !IsBuildOutput(path))
            .Order(StringComparer.Ordinal);

    /// <summary>Every project under <paramref name="folder"/> (apps, bench, tests) by name.</summary>
    public static IReadOnlyList<Project> Projects(string folder) =>
        Directory.EnumerateFiles(Path.Combine(Root, folder), "*.csproj", SearchOption.AllDirectories)
            .Where(path => !IsBuildOutput(path))
            .Select(Project.Read)
            .OrderBy(project => project.Name, StringComparer.Ordinal)
            .ToArray();

    public static string Relative(string path) => Path.GetRelativePath(Root, path);

    private static bool IsBuildOutput(string path) =>
        path.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
        || path.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal);

    private static string FindRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "DaprPayments.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("DaprPayments.sln not found above " + AppContext.BaseDirectory);
    }

    /// <summary>A project and what it references: other projects (with their alias, if any) and packages.</summary>
    public sealed record Project(string Name, string Path, IReadOnlyList<(string Name, string? Alias)> References, IReadOnlyList<string> Packages)
    {
        public static Project Read(string path)
        {
            var text = File.ReadAllText(path);
            var references = ProjectReference().Matches(text)
                .Select(match => (System.IO.Path.GetFileNameWithoutExtension(match.Groups["path"].Value.Replace('\\', '/')),
                    match.Groups["alias"].Success ? match.Groups["alias"].Value : null))
                .ToArray();
            var packages = PackageReference().Matches(text).Select(match => match.Groups["name"].Value).ToArray();
            return new Project(System.IO.Path.GetFileNameWithoutExtension(path), path, references, packages);
        }
    }

    [GeneratedRegex("""<ProjectReference\s+Include="(?<path>[^"]+)"(\s+Aliases="(?<alias>[^"]+)")?""")]
    private static partial Regex ProjectReference();

    [GeneratedRegex("""<PackageReference\s+Include="(?<name>[^"]+)""")]
    private static partial Regex PackageReference();
}

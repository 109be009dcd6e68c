namespace Payments.Architecture.Tests;

/// <summary>Each project depends only on what it uses, as docs/architecture.md allows (STYLE §11: a project
/// references an implementation only where it composes one).</summary>
public sealed class ProjectGraphTests
{
    private static readonly AllowedGraph Allowed = AllowedGraph.Read();

    private static IEnumerable<Repository.Project> Production() => Repository.Projects("apps").Concat(Repository.Projects("bench"));

    [Fact]
    public void EveryProductionReference_IsAnEdgeOfTheDocumentedGraph()
    {
        var outside = Production()
            .SelectMany(project => project.References.Select(reference => (project.Name, reference.Name, reference.Alias)))
            .Where(edge => edge.Alias is null ? !Allowed.Code.Contains((edge.Item1, edge.Item2)) : !Allowed.BuildOnly.Contains((edge.Item1, edge.Item2)))
            .Select(edge => $"{edge.Item1} -> {edge.Item2}{(edge.Alias is null ? string.Empty : " (aliased, build-only)")}")
            .ToArray();

        Assert.True(outside.Length == 0, $"References outside the graph in {AllowedGraph.Document}: " + string.Join("; ", outside));
    }

    [Fact]
    public void EveryDocumentedEdge_Exists_SoTheDocumentStaysTrue()
    {
        var actual = Production()
            .SelectMany(project => project.References.Select(reference => (project.Name, reference.Name, reference.Alias is not null)))
            .ToHashSet();
        var missing = Allowed.Code.Where(edge => !actual.Contains((edge.From, edge.To, false)))
            .Concat(Allowed.BuildOnly.Where(edge => !actual.Contains((edge.From, edge.To, true))))
            .Select(edge => $"{edge.From} -> {edge.To}")
            .ToArray();

        Assert.True(missing.Length == 0, $"{AllowedGraph.Document} draws references that no project has: " + string.Join("; ", missing));
    }

    [Fact]
    public void EveryProductionProject_IsInTheDocumentedGraph()
    {
        var undocumented = Production().Select(project => project.Name).Where(name => !Allowed.Projects.Contains(name)).ToArray();

        Assert.True(undocumented.Length == 0, $"Projects missing from {AllowedGraph.Document}: " + string.Join(", ", undocumented));
    }

    [Fact]
    public void BuildOnlyReferences_AreNeverUsedInCode()
    {
        var users = Production()
            .Where(project => project.References.Any(reference => reference.Alias is not null))
            .SelectMany(project => Directory.EnumerateFiles(Path.GetDirectoryName(project.Path)!, "*.cs", SearchOption.AllDirectories)
                .Where(file => File.ReadAllText(file).Contains("extern alias", StringComparison.Ordinal)))
            .Select(Repository.Relative)
            .ToArray();

        Assert.True(users.Length == 0, "Build-only (aliased) app references are for building and copying the apps, not for reaching into them: " + string.Join(", ", users));
    }

    [Fact]
    public void TestProjects_ReferenceOnlyProductionProjectsAndTheTestingLibrary()
    {
        var production = Production().Select(project => project.Name).ToHashSet(StringComparer.Ordinal);
        var outside = Repository.Projects("tests")
            .SelectMany(project => project.References.Select(reference => (project.Name, Reference: reference.Name)))
            .Where(edge => !production.Contains(edge.Reference) && edge.Reference != "Payments.Testing")
            .Select(edge => $"{edge.Name} -> {edge.Reference}")
            .ToArray();

        Assert.True(outside.Length == 0, "Test projects may reference production projects and Payments.Testing only: " + string.Join("; ", outside));
    }

    [Theory]
    [InlineData("Payments.Domain")]
    [InlineData("Payments.Telemetry")]
    [InlineData("Payments.Ledger.Contracts")]
    [InlineData("Payments.Risk.Contracts")]
    public void ContractProjects_CarryNoInfrastructure(string name)
    {
        var project = Production().Single(project => project.Name == name);

        Assert.Empty(project.Packages);
        Assert.All(project.References, reference => Assert.Contains(reference.Name, new[] { "Payments.Domain" }));
    }
}

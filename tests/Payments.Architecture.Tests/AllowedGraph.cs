using System.Text.RegularExpressions;

namespace Payments.Architecture.Tests;

/// <summary>The allowed project graph, as docs/architecture.md draws it: the first mermaid block, nodes declared as
/// <c>id["Payments.X"]</c>, <c>a --&gt; b</c> a code reference, <c>a -.-&gt; b</c> a build-only reference (the app is
/// built and copied beside the referencing project, which never uses its code).</summary>
internal sealed partial record AllowedGraph(IReadOnlySet<string> Projects, IReadOnlySet<(string From, string To)> Code, IReadOnlySet<(string From, string To)> BuildOnly)
{
    public const string Document = "docs/architecture.md";

    public static AllowedGraph Read()
    {
        var text = File.ReadAllText(Path.Combine(Repository.Root, Document));
        var block = MermaidBlock().Match(text);
        if (!block.Success)
        {
            throw new InvalidDataException($"{Document} has no mermaid block.");
        }

        var names = Node().Matches(block.Value).ToDictionary(match => match.Groups["id"].Value, match => match.Groups["name"].Value, StringComparer.Ordinal);
        var code = new HashSet<(string, string)>();
        var buildOnly = new HashSet<(string, string)>();
        foreach (Match edge in Edge().Matches(block.Value))
        {
            string Name(string id) => names.TryGetValue(id, out var name) ? name : throw new InvalidDataException($"{Document}: node '{id}' is not declared.");
            (edge.Groups["arrow"].Value == "-->" ? code : buildOnly).Add((Name(edge.Groups["from"].Value), Name(edge.Groups["to"].Value)));
        }

        return new AllowedGraph(names.Values.ToHashSet(StringComparer.Ordinal), code, buildOnly);
    }

    [GeneratedRegex("```mermaid\\s.*?```", RegexOptions.Singleline)]
    private static partial Regex MermaidBlock();

    [GeneratedRegex("""(?<id>\w+)\["(?<name>Payments\.[\w.]+)"\]""")]
    private static partial Regex Node();

    [GeneratedRegex("""^\s*(?<from>\w+)\s*(?<arrow>-->|-\.->)\s*(?<to>\w+)\s*$""", RegexOptions.Multiline)]
    private static partial Regex Edge();
}

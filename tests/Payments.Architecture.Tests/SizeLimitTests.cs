using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Payments.Architecture.Tests;

/// <summary>TIGER_STYLE's limits (STYLE.md): short functions and files a reader takes in at once.</summary>
public sealed class SizeLimitTests
{
    public const int MaxMethodLines = 70;
    public const int MaxFileLines = 400;

    [Fact]
    public void NoProductionFile_IsLongerThanTheLimit()
    {
        var tooLong = Repository.ProductionSources()
            .Select(path => (Path: Repository.Relative(path), Lines: File.ReadLines(path).Count()))
            .Where(file => file.Lines > MaxFileLines)
            .Select(file => $"{file.Path} ({file.Lines} lines)")
            .ToArray();

        Assert.True(tooLong.Length == 0, $"Files over {MaxFileLines} lines: " + string.Join(", ", tooLong));
    }

    [Fact]
    public void NoProductionMethod_IsLongerThanTheLimit()
    {
        var tooLong = Repository.ProductionSources()
            .SelectMany(path => Methods(path).Select(method => (Path: Repository.Relative(path), method.Name, method.Lines)))
            .Where(method => method.Lines > MaxMethodLines)
            .Select(method => $"{method.Path}: {method.Name} ({method.Lines} lines)")
            .ToArray();

        Assert.True(tooLong.Length == 0, $"Methods over {MaxMethodLines} lines: " + string.Join(", ", tooLong));
    }

    [Fact]
    public void TheMethodCount_CountsWhatItClaims()
    {
        // A check that found nothing because it parsed nothing would pass forever: the known long-ish methods are seen.
        var methods = Repository.ProductionSources().SelectMany(Methods).ToArray();

        Assert.True(methods.Length > 300, $"only {methods.Length} methods found");
        Assert.Contains(methods, method => method.Name == "TransferApplier.ApplyWithRetriesAsync" && method.Lines > 30);
        Assert.Contains(methods, method => method.Name.EndsWith("<top-level statements>", StringComparison.Ordinal));
    }

    /// <summary>Every method, constructor, accessor, local function and top-level program of a file, with its length
    /// in lines from its signature to its closing brace (comments above it not counted).</summary>
    private static IEnumerable<(string Name, int Lines)> Methods(string path)
    {
        var root = CSharpSyntaxTree.ParseText(File.ReadAllText(path), path: path).GetRoot();
        foreach (var node in root.DescendantNodes())
        {
            var name = node switch
            {
                BaseMethodDeclarationSyntax method => $"{Owner(method)}.{method switch
                {
                    MethodDeclarationSyntax named => named.Identifier.Text,
                    ConstructorDeclarationSyntax constructor => constructor.Identifier.Text,
                    _ => method.Kind().ToString(),
                }}",
                LocalFunctionStatementSyntax local => $"{Owner(local)}.{local.Identifier.Text}",
                AccessorDeclarationSyntax accessor when accessor.Body is not null || accessor.ExpressionBody is not null => $"{Owner(accessor)}.{accessor.Keyword.Text}",
                _ => null,
            };
            if (name is not null)
            {
                yield return (name, Lines(node.GetLocation()));
            }
        }

        var program = root.ChildNodes().OfType<GlobalStatementSyntax>().ToArray();
        if (program.Length > 0)
        {
            var span = program[0].GetLocation().GetLineSpan().StartLinePosition.Line;
            var end = program[^1].GetLocation().GetLineSpan().EndLinePosition.Line;
            yield return (Path.GetFileName(path) + " <top-level statements>", end - span + 1);
        }
    }

    private static string Owner(SyntaxNode node) =>
        node.Ancestors().OfType<BaseTypeDeclarationSyntax>().FirstOrDefault()?.Identifier.Text ?? "<global>";

    private static int Lines(Location location)
    {
        var span = location.GetLineSpan();
        return span.EndLinePosition.Line - span.StartLinePosition.Line + 1;
    }
}

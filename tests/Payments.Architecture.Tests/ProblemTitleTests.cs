using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Payments.Architecture.Tests;

/// <summary>RFC 9457 §3.1.3: a problem type's title "SHOULD NOT change from occurrence to occurrence". Probes found one
/// type answered under up to four titles (rate-limited, unsupported-media-type) across the services; what varies
/// belongs in the detail. Every call that names a type from <c>ProblemTypes</c> and gives a literal title next to it is
/// read, in every service, and each type has one title.</summary>
public sealed class ProblemTitleTests
{
    [Fact]
    public void EveryProblemType_HasOneTitle_InEveryService()
    {
        var varying = TitledTypes()
            .GroupBy(use => use.Type, StringComparer.Ordinal)
            .Where(type => type.Select(use => use.Title).Distinct(StringComparer.Ordinal).Count() > 1)
            .Select(type => $"{type.Key}: " + string.Join("; ", type.Select(use => $"\"{use.Title}\" ({use.Where})").Distinct()))
            .ToArray();

        Assert.True(varying.Length == 0, "Types with more than one title:\n" + string.Join("\n", varying));
    }

    /// <summary>A title built from values varies by construction (a review: amount-limit-exceeded said "The payment is
    /// above…" and "The deposit is above…"), and the check above cannot compare it: what varies goes in the detail.</summary>
    [Fact]
    public void NoProblemTitle_IsInterpolated()
    {
        var interpolated = TitledTypes().Where(use => use.Title.StartsWith(Interpolated, StringComparison.Ordinal)).Select(use => $"{use.Type} ({use.Where})").ToArray();

        Assert.True(interpolated.Length == 0, "Titles built from values:\n" + string.Join("\n", interpolated));
    }

    private const string Interpolated = "(interpolated)";

    [Fact]
    public void TheTitleCheck_ReadsWhatItClaims()
    {
        // A check that found nothing because it parsed nothing would pass forever: known uses are seen.
        var uses = TitledTypes().ToArray();

        Assert.True(uses.Length > 60, $"only {uses.Length} titled problems found");
        Assert.Contains(uses, use => use.Type == "PaymentNotFound" && use.Where.StartsWith("apps/Payments.Api/", StringComparison.Ordinal));
        Assert.Contains(uses, use => use.Type == "MalformedRequest" && use.Where.StartsWith("apps/Payments.ServiceDefaults/", StringComparison.Ordinal));
        Assert.Contains(uses, use => use.Type == "NotFound" && use.Where.StartsWith("apps/Payments.Edge/", StringComparison.Ordinal));
    }

    /// <summary>Each argument <c>ProblemTypes.X</c> (positional, or named <c>type:</c>) of a call or a tuple, with its
    /// title: a literal named <c>title:</c>, or else the positional literal right after the type.</summary>
    private static IEnumerable<(string Type, string Title, string Where)> TitledTypes()
    {
        foreach (var path in Repository.ProductionSources())
        {
            var root = CSharpSyntaxTree.ParseText(File.ReadAllText(path), path: path).GetRoot();
            var lists = root.DescendantNodes().OfType<ArgumentListSyntax>().Select(arguments => arguments.Arguments)
                .Concat(root.DescendantNodes().OfType<TupleExpressionSyntax>().Select(tuple => tuple.Arguments));
            foreach (var list in lists)
            {
                for (var i = 0; i < list.Count; i++)
                {
                    if (TypeName(list[i].Expression) is { } type
                        && list[i].NameColon?.Name.Identifier.Text is null or "type"
                        && Title(list, i) is { } title)
                    {
                        var line = list[i].GetLocation().GetLineSpan().StartLinePosition.Line + 1;
                        yield return (type, title, $"{Repository.Relative(path).Replace('\\', '/')}:{line}");
                    }
                }
            }
        }
    }

    /// <summary><c>ProblemTypes.X</c>, or <c>ProblemTypes.ForStatus(s)</c> by its argument's text.</summary>
    private static string? TypeName(ExpressionSyntax expression) => expression switch
    {
        MemberAccessExpressionSyntax { Expression: IdentifierNameSyntax { Identifier.Text: "ProblemTypes" } } member => member.Name.Identifier.Text,
        InvocationExpressionSyntax { Expression: MemberAccessExpressionSyntax { Expression: IdentifierNameSyntax { Identifier.Text: "ProblemTypes" } } call } invocation =>
            $"{call.Name.Identifier.Text}({invocation.ArgumentList.Arguments.ToString()})",
        _ => null,
    };

    private static string? Title(SeparatedSyntaxList<ArgumentSyntax> list, int type)
    {
        var named = list.FirstOrDefault(argument => argument.NameColon?.Name.Identifier.Text == "title");
        if (named is null && list[type].NameColon is not null && IsFrameworkProblem(list[type]))
        {
            // Results.Problem(…, type: …) without a title: ASP.NET Core writes the status's reason phrase ("Unauthorized"),
            // which a probe found beside the same type's own title elsewhere.
            var status = list.FirstOrDefault(argument => argument.NameColon?.Name.Identifier.Text == "statusCode")?.Expression.ToString() ?? "500";
            return $"(the reason phrase of {status})";
        }

        var argument = named ?? (type + 1 < list.Count && list[type + 1].NameColon is null ? list[type + 1] : null);
        return argument?.Expression switch
        {
            LiteralExpressionSyntax literal when literal.IsKind(SyntaxKind.StringLiteralExpression) => literal.Token.ValueText,
            InterpolatedStringExpressionSyntax built => $"{Interpolated} {built}",
            _ => null,
        };
    }

    /// <summary>An argument of <c>Results.Problem</c> or <c>TypedResults.Problem</c> (whose title defaults to the reason phrase).</summary>
    private static bool IsFrameworkProblem(ArgumentSyntax argument) =>
        argument.Parent?.Parent is InvocationExpressionSyntax
        {
            Expression: MemberAccessExpressionSyntax { Name.Identifier.Text: "Problem", Expression: IdentifierNameSyntax { Identifier.Text: "Results" or "TypedResults" } },
        };
}

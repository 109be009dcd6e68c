using System.Globalization;
using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace Payments.Deploy.Tests;

/// <summary>Checks a rendered object against a CustomResourceDefinition's <c>openAPIV3Schema</c> as the API server
/// treats it: a field the schema does not name is pruned (silently lost, so here an error) unless
/// <c>x-kubernetes-preserve-unknown-fields</c> keeps it; a required field must be there; a value must have the
/// schema's type and, where given, one of its <c>enum</c> values. Kubernetes docs, "Extend the Kubernetes API with
/// CustomResourceDefinitions": "Specifying a structural schema", "Field pruning". Only the parts of OpenAPI v3 that
/// structural schemas allow are handled; CEL rules (<c>x-kubernetes-validations</c>) are not evaluated.</summary>
public static partial class StructuralSchema
{
    /// <summary>Every finding for <paramref name="value"/> under <paramref name="schema"/>, each with its path.</summary>
    public static IReadOnlyList<string> Validate(YamlMappingNode schema, YamlNode value, string path = "")
    {
        var findings = new List<string>();
        Check(schema, value, path, findings);
        return findings;
    }

    /// <summary>The <c>openAPIV3Schema</c> of <paramref name="kind"/> at <paramref name="version"/> in a CRD file,
    /// or null if the file defines no such kind and version.</summary>
    public static YamlMappingNode? Load(string crdFile, string kind, string version)
    {
        var stream = new YamlStream();
        using (var reader = new StreamReader(crdFile))
        {
            stream.Load(reader);
        }

        foreach (var document in stream.Documents)
        {
            if (document.RootNode is not YamlMappingNode crd || Child(crd, "spec") is not YamlMappingNode spec
                || Scalar(Child((YamlMappingNode)spec["names"], "kind")) != kind)
            {
                continue;
            }

            foreach (var served in ((YamlSequenceNode)spec["versions"]).Children.Cast<YamlMappingNode>())
            {
                if (Scalar(Child(served, "name")) == version)
                {
                    return (YamlMappingNode)((YamlMappingNode)served["schema"])["openAPIV3Schema"];
                }
            }
        }

        return null;
    }

    private static void Check(YamlMappingNode schema, YamlNode value, string path, List<string> findings)
    {
        var type = Scalar(Child(schema, "type"));
        if (value is YamlScalarNode { Style: not (YamlDotNet.Core.ScalarStyle.SingleQuoted or YamlDotNet.Core.ScalarStyle.DoubleQuoted) } scalar
            && IsNull(scalar.Value))
        {
            return; // null is what an omitted optional field renders as; the API server drops it
        }

        switch (type)
        {
            case "object":
                CheckObject(schema, value, path, findings);
                break;
            case "array":
                if (value is not YamlSequenceNode sequence)
                {
                    findings.Add($"{path}: expected an array");
                    break;
                }

                if (Child(schema, "items") is YamlMappingNode items)
                {
                    for (var index = 0; index < sequence.Children.Count; index++)
                    {
                        Check(items, sequence.Children[index], $"{path}[{index}]", findings);
                    }
                }

                break;
            case "string" or "integer" or "number" or "boolean":
                CheckScalar(schema, value, type, path, findings);
                break;
            default:
                // No type: x-kubernetes-int-or-string or x-kubernetes-preserve-unknown-fields (any value is kept).
                break;
        }
    }

    private static void CheckObject(YamlMappingNode schema, YamlNode value, string path, List<string> findings)
    {
        if (value is not YamlMappingNode mapping)
        {
            findings.Add($"{path}: expected an object");
            return;
        }

        var properties = Child(schema, "properties") as YamlMappingNode;
        var additional = Child(schema, "additionalProperties") as YamlMappingNode;
        var preserve = Scalar(Child(schema, "x-kubernetes-preserve-unknown-fields")) == "true";
        foreach (var (key, child) in mapping.Children)
        {
            var name = Scalar(key);
            var childPath = $"{path}.{name}";
            if (path.Length == 0 && name == "metadata")
            {
                continue; // ObjectMeta: validated by the API server itself, not by the CRD's schema
            }

            if (properties is not null && Child(properties, name) is YamlMappingNode property)
            {
                Check(property, child, childPath, findings);
            }
            else if (additional is not null)
            {
                Check(additional, child, childPath, findings);
            }
            else if (!preserve)
            {
                findings.Add($"{childPath}: not in the schema (the API server prunes it)");
            }
        }

        if (Child(schema, "required") is YamlSequenceNode required)
        {
            foreach (var name in required.Children.Select(Scalar))
            {
                if (Child(mapping, name) is null)
                {
                    findings.Add($"{path}.{name}: required");
                }
            }
        }
    }

    private static void CheckScalar(YamlMappingNode schema, YamlNode value, string type, string path, List<string> findings)
    {
        if (value is not YamlScalarNode scalar)
        {
            findings.Add($"{path}: expected a {type}");
            return;
        }

        var quoted = scalar.Style is YamlDotNet.Core.ScalarStyle.SingleQuoted or YamlDotNet.Core.ScalarStyle.DoubleQuoted
            or YamlDotNet.Core.ScalarStyle.Literal or YamlDotNet.Core.ScalarStyle.Folded;
        var text = scalar.Value ?? string.Empty;
        // YAML 1.2 core schema, which the API server's YAML decoder follows for plain scalars.
        var actual = quoted ? "string"
            : text is "true" or "false" ? "boolean"
            : Integer().IsMatch(text) ? "integer"
            : double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out _) ? "number"
            : "string";
        var fits = actual == type || (type == "number" && actual == "integer");
        if (!fits)
        {
            findings.Add($"{path}: '{text}' is a {actual}, the schema wants a {type}");
        }

        if (Child(schema, "enum") is YamlSequenceNode allowed && !allowed.Children.Select(Scalar).Contains(text))
        {
            findings.Add($"{path}: '{text}' is not one of {string.Join(", ", allowed.Children.Select(Scalar))}");
        }
    }

    private static bool IsNull(string? text) => text is null or "" or "~" or "null" or "Null" or "NULL";

    private static YamlNode? Child(YamlMappingNode node, string key) =>
        node.Children.TryGetValue(new YamlScalarNode(key), out var child) ? child : null;

    private static string Scalar(YamlNode? node) => (node as YamlScalarNode)?.Value ?? string.Empty;

    [GeneratedRegex("^[-+]?[0-9]+$")]
    private static partial Regex Integer();
}

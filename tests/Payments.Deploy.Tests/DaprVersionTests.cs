using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace Payments.Deploy.Tests;

/// <summary>Issue 13 item 2: the Dapr versions the chart supports are pinned in one place (Chart.yaml's
/// annotations), installed at that version everywhere, paired with an SDK Dapr supports them with, and every Dapr
/// resource the chart renders fits each supported version's CRD schema — copied verbatim from dapr/dapr
/// (charts/dapr/crds at the tag named in each file's first line) into DaprCrds/&lt;version&gt;.</summary>
public sealed partial class DaprVersionTests
{
    /// <summary>The newest patch of each supported minor whose CRDs are in DaprCrds. 1.16 is not supported: its
    /// Configuration has no workflow.stateRetentionPolicy (see the test below).</summary>
    private static readonly string[] SupportedCrdVersions = ["1.17.13", "1.18.3"];

    private static readonly Dictionary<string, string> CrdFiles = new()
    {
        ["Component"] = "components.yaml",
        ["Configuration"] = "configuration.yaml",
        ["Resiliency"] = "resiliency.yaml",
        ["Subscription"] = "subscription.yaml",
        ["HTTPEndpoint"] = "httpendpoints.yaml",
    };

    public static TheoryData<string, string> ScenariosAndVersions()
    {
        var data = new TheoryData<string, string>();
        foreach (var scenario in ChartTests.ValuesFiles)
        {
            foreach (var version in SupportedCrdVersions)
            {
                data.Add(scenario, version);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(ScenariosAndVersions))]
    public async Task EveryDaprResource_FitsTheCrdSchema_OfEachSupportedVersion(string valuesFile, string version)
    {
        var resources = await RenderDaprResourcesAsync(valuesFile);
        Assert.Contains(resources, resource => resource.Kind == "Configuration");
        Assert.Contains(resources, resource => resource.Kind == "Component");
        foreach (var (kind, apiVersion, name, document) in resources)
        {
            var schema = Schema(version, kind, apiVersion);
            Assert.True(schema is not null, $"Dapr {version} does not serve {kind} {apiVersion}");
            var findings = StructuralSchema.Validate(schema, document);
            Assert.True(findings.Count == 0, $"{valuesFile}: {kind} {name} against Dapr {version}'s CRD:\n{string.Join('\n', findings)}");
        }
    }

    /// <summary>Why 1.16 is not supported — and proof that the schema check finds what a cluster would silently drop:
    /// 1.16's Configuration has no workflow.stateRetentionPolicy, so the purge of finished workflows would be lost.</summary>
    [Fact]
    public async Task Dapr116_WouldDropTheWorkflowRetention_SoItIsNotSupported()
    {
        var schema = Schema("1.16.19", "Configuration", "dapr.io/v1alpha1")!;
        var findings = (await RenderDaprResourcesAsync(null)).Where(resource => resource.Kind == "Configuration")
            .SelectMany(configuration => StructuralSchema.Validate(schema, configuration.Document))
            .ToArray();
        Assert.Equal([".spec.workflow.stateRetentionPolicy: not in the schema (the API server prunes it)"], findings);
    }

    /// <summary>One pinned control-plane version, installed by the Tiltfile (it reads Chart.yaml), docs/deploy.md and
    /// the daprd container tests, and among the versions checked above; and an SDK that Dapr supports with every
    /// supported runtime minor: "Newer Dapr SDKs support the latest version of Dapr runtime and two previous
    /// versions (N-2)" (dapr/docs, daprdocs/content/en/operations/support/support-release-policy.md).</summary>
    [Fact]
    public async Task ThePinnedVersion_IsInstalledEverywhere_AndTheSdkSupportsEverySupportedRuntime()
    {
        var chart = new YamlStream();
        chart.Load(new StringReader(await File.ReadAllTextAsync(Path.Combine(HelmTool.ChartDirectory, "Chart.yaml"))));
        var annotations = (YamlMappingNode)((YamlMappingNode)chart.Documents[0].RootNode)["annotations"];
        var pinned = ((YamlScalarNode)annotations["daprpayments.dev/dapr-version"]).Value!;
        Assert.Equal(SupportedCrdVersions[^1], pinned);
        Assert.Equal($"{SupportedCrdVersions[0][..4]}.2-{pinned[..4]}.x", ((YamlScalarNode)annotations["daprpayments.dev/dapr-supported"]).Value);

        var root = HelmTool.RepositoryRoot;
        Assert.Contains("read_yaml('charts/daprpayments/Chart.yaml')['annotations']['daprpayments.dev/dapr-version']",
            await File.ReadAllTextAsync(Path.Combine(root, "Tiltfile")), StringComparison.Ordinal);
        var deploy = await File.ReadAllTextAsync(Path.Combine(root, "docs", "deploy.md"));
        Assert.Contains($"helm upgrade --install dapr dapr/dapr --version {pinned} ", deploy, StringComparison.Ordinal);
        Assert.Contains($"DAPRPAYMENTS_TEST_DAPR_VERSION={pinned} ", deploy, StringComparison.Ordinal);
        Assert.Contains($"?? \"{pinned}\";", await File.ReadAllTextAsync(Path.Combine(root, "tests", "Payments.Containers.Tests", "ContainerSystem.cs")), StringComparison.Ordinal);

        var packages = await File.ReadAllTextAsync(Path.Combine(root, "Directory.Packages.props"));
        var sdk = SdkVersion().Match(packages);
        Assert.True(sdk.Success, "Dapr.Workflow's version not found in Directory.Packages.props");
        var sdkMinor = int.Parse(sdk.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.All(SupportedCrdVersions, version => Assert.InRange(sdkMinor - int.Parse(version.Split('.')[1], System.Globalization.CultureInfo.InvariantCulture), 0, 2));
    }

    private static YamlMappingNode? Schema(string version, string kind, string apiVersion) =>
        StructuralSchema.Load(Path.Combine(HelmTool.RepositoryRoot, "tests", "Payments.Deploy.Tests", "DaprCrds", version, CrdFiles[kind]), kind, apiVersion.Split('/')[1]);

    private static async Task<List<(string Kind, string ApiVersion, string Name, YamlMappingNode Document)>> RenderDaprResourcesAsync(string? valuesFile)
    {
        var (exitCode, output) = await HelmTool.HelmAsync(["template", "dp", ".", .. ChartTests.ValuesArguments(valuesFile), "--kube-version", ChartTests.KubeVersion]);
        Assert.True(exitCode == 0, output);
        var stream = new YamlStream();
        stream.Load(new StringReader(output));
        return [.. stream.Documents
            .Select(document => document.RootNode)
            .OfType<YamlMappingNode>()
            .Select(root => (Root: root, ApiVersion: ((YamlScalarNode)root["apiVersion"]).Value!))
            .Where(document => document.ApiVersion.StartsWith("dapr.io/", StringComparison.Ordinal))
            .Select(document => (((YamlScalarNode)document.Root["kind"]).Value!, document.ApiVersion,
                ((YamlScalarNode)((YamlMappingNode)document.Root["metadata"])["name"]).Value!, document.Root))];
    }

    [GeneratedRegex(@"<PackageVersion Include=""Dapr\.Workflow"" Version=""1\.(\d+)\.\d+""")]
    private static partial Regex SdkVersion();
}

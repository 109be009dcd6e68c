using System.Text.RegularExpressions;

namespace Payments.Deploy.Tests;

/// <summary>Tilt and kind cannot run on these machines; this checks statically what a developer's `tilt up` relies
/// on: the Tiltfile is valid Starlark syntax (a subset of Python's), and every project, file, image and values key it
/// names exists.</summary>
public sealed partial class TiltTests
{
    private static string Root => HelmTool.RepositoryRoot;

    [Fact]
    public async Task Tiltfile_ParsesAsStarlarkSyntax()
    {
        var parse = await HelmTool.RunAsync("python3", ["-c", "import ast, sys; ast.parse(open(sys.argv[1]).read(), 'Tiltfile')", "Tiltfile"], Root);
        Assert.True(parse.ExitCode == 0, parse.Output);
    }

    [Fact]
    public void Tiltfile_NamesOnlyProjectsFilesAndChartAppsThatExist()
    {
        var tiltfile = File.ReadAllText(Path.Combine(Root, "Tiltfile"));
        var apps = AppEntry().Matches(tiltfile).ToDictionary(match => match.Groups[1].Value, match => match.Groups[2].Value);

        Assert.Equal(["api", "ledger", "orchestrator", "risk"], apps.Keys.Order());
        Assert.All(apps.Values, project => Assert.True(File.Exists(Path.Combine(Root, "apps", project, project + ".csproj")), project));
        foreach (var path in new[] { "charts/daprpayments", "tilt/Dockerfile.dev", "tilt/values-dev.yaml", "charts/daprpayments/values-region-a.yaml", "charts/daprpayments/values-region-b.yaml" })
        {
            Assert.Contains($"'{path.Replace("region-a", "region-{r}", StringComparison.Ordinal).Replace("region-b", "region-{r}", StringComparison.Ordinal)}'", tiltfile, StringComparison.Ordinal);
            Assert.True(File.Exists(Path.Combine(Root, path)) || Directory.Exists(Path.Combine(Root, path)), path);
        }

        var values = File.ReadAllText(Path.Combine(Root, "charts", "daprpayments", "values.yaml"));
        Assert.All(apps.Keys, app => Assert.Matches($"(?m)^  {app}:$", values)); // image_keys apps.<name>.image exist in the chart
    }

    [Fact]
    public async Task Chart_RendersWithTiltsValuesAndImageOverrides()
    {
        var (exitCode, output) = await HelmTool.HelmAsync(
            "template", "dp", ".", "--kube-version", ChartTests.KubeVersion,
            "-f", "values-region-a.yaml", "-f", Path.Combine(Root, "tilt", "values-dev.yaml"),
            "--set", "apps.api.image=daprpayments/api:tilt-0123", "--set", "apps.ledger.image=daprpayments/ledger:tilt-0123");
        Assert.True(exitCode == 0, output);
        Assert.Contains("image: \"daprpayments/api:tilt-0123\"", output, StringComparison.Ordinal);
        Assert.Contains("image: \"daprpayments/risk:0.1.0\"", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task KindAndTiltYaml_PassYamllint()
    {
        var lint = await HelmTool.RunAsync("yamllint", ["-c", ".yamllint", "tilt/kind-region-a.yaml", "tilt/kind-region-b.yaml", "tilt/values-dev.yaml", "components/dapr.yaml"], Root);
        Assert.True(lint.ExitCode == 0, lint.Output);
    }

    [GeneratedRegex(@"'(\w+)': '(Payments\.[\w.]+)'")]
    private static partial Regex AppEntry();
}

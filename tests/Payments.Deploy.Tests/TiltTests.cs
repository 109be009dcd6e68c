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

        // Every app the region values deploy (the failover service too), and the etcd image (issue 13 finding 4).
        Assert.Equal(["api", "failover", "ledger", "orchestrator", "risk"], apps.Keys.Order());
        Assert.Contains("docker_build('daprpayments/etcd', '.', dockerfile='Dockerfile.etcd'", tiltfile, StringComparison.Ordinal);
        Assert.Contains("['etcd.image']", tiltfile, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(Root, "Dockerfile.etcd")));
        Assert.All(apps.Values, project => Assert.True(File.Exists(Path.Combine(Root, "apps", project, project + ".csproj")), project));
        foreach (var path in new[] { "charts/daprpayments", "tilt/Dockerfile.dev", "tilt/values-dev.yaml", "charts/daprpayments/values-region-a.yaml", "charts/daprpayments/values-region-b.yaml" })
        {
            Assert.Contains($"'{path.Replace("region-a", "region-{r}", StringComparison.Ordinal).Replace("region-b", "region-{r}", StringComparison.Ordinal)}'", tiltfile, StringComparison.Ordinal);
            Assert.True(File.Exists(Path.Combine(Root, path)) || Directory.Exists(Path.Combine(Root, path)), path);
        }

        var values = File.ReadAllText(Path.Combine(Root, "charts", "daprpayments", "values.yaml"));
        Assert.All(apps.Keys, app => Assert.Matches($"(?m)^  {app}:$", values)); // image_keys apps.<name>.image exist in the chart
    }

    /// <summary>Found by review: the app images' build context is .artifacts/tilt/{app}, which the repository's
    /// .dockerignore leaves out (an empty context: COPY failed), and the live update synced into a read-only root and
    /// restarted through a file under /tmp, which the chart mounts a volume over (the restart helper exited). The
    /// image has its own ignore file, and a change rebuilds it.</summary>
    [Fact]
    public void TiltsAppImages_HaveTheirBuildOutputInTheirContext_AndNeedNoWritableRoot()
    {
        var tiltfile = File.ReadAllText(Path.Combine(Root, "Tiltfile"));
        var ignore = Path.Combine(Root, "tilt", "Dockerfile.dev.dockerignore");
        Assert.Contains(".artifacts/", File.ReadAllText(Path.Combine(Root, ".dockerignore")), StringComparison.Ordinal);
        Assert.True(File.Exists(ignore), "tilt/Dockerfile.dev.dockerignore replaces .dockerignore for the app images");
        Assert.DoesNotContain(File.ReadAllLines(ignore), line => line.TrimStart().StartsWith(".artifacts", StringComparison.Ordinal) || line.Trim() is "*" or "**");
        Assert.Contains("'.artifacts/tilt/' + name", tiltfile, StringComparison.Ordinal);
        Assert.DoesNotContain("docker_build_with_restart", tiltfile, StringComparison.Ordinal);
        Assert.DoesNotContain("live_update", tiltfile, StringComparison.Ordinal);
    }

    /// <summary>Found by review: the app image had no ENTRYPOINT and relied on docker_build's <c>entrypoint</c>, which
    /// Tilt injects only into YAML it deploys itself, not into a helm_resource's pods; the chart sets no command, so
    /// the runtime image's default ran instead of the app. The image now names its app.</summary>
    [Fact]
    public async Task TiltsAppImages_RunTheirAppByThemselves()
    {
        var dockerfile = File.ReadAllText(Path.Combine(Root, "tilt", "Dockerfile.dev"));
        var tiltfile = File.ReadAllText(Path.Combine(Root, "Tiltfile"));
        Assert.Matches(@"(?m)^ARG APP$", dockerfile);
        Assert.Matches(@"(?m)^ENV .*\bAPP=\$\{APP\}", dockerfile);
        Assert.Matches(@"(?m)^ENTRYPOINT \[.*exec dotnet .*/app/\$\{APP\}\.dll", dockerfile);
        Assert.Contains("build_args={'APP': project, 'OUT': out}", tiltfile, StringComparison.Ordinal);
        var objects = await ChartTests.RenderAsync("values-region-a.yaml+../../tilt/values-dev.yaml");
        var apps = objects.OfType<k8s.Models.V1Deployment>().SelectMany(deployment => deployment.Spec.Template.Spec.Containers)
            .Where(container => container.Image.StartsWith("daprpayments/", StringComparison.Ordinal) && !container.Image.StartsWith("daprpayments/etcd", StringComparison.Ordinal))
            .ToArray();
        Assert.NotEmpty(apps);
        Assert.All(apps, container => Assert.True(container.Command is null or { Count: 0 }, $"{container.Name} sets a command: the image's entrypoint would not run"));
    }

    /// <summary>A docs review: docs/deploy.md says Tilt runs one replica of each app; the region values turn the failover
    /// service on, and it ran at the chart's two.</summary>
    [Fact]
    public async Task TiltsRender_RunsOneReplicaOfEachApp()
    {
        var deployments = (await ChartTests.RenderAsync("values-region-a.yaml+../../tilt/values-dev.yaml")).OfType<k8s.Models.V1Deployment>().ToArray();

        Assert.Contains(deployments, deployment => deployment.Metadata.Name.EndsWith("-failover", StringComparison.Ordinal));
        Assert.All(deployments, deployment => Assert.True(deployment.Spec.Replicas == 1, $"{deployment.Metadata.Name}: {deployment.Spec.Replicas} replicas"));
    }

    /// <summary>Issue 13 finding 4: every Secret the pods of Tilt's render read by name is one the chart renders or
    /// the Tiltfile creates, and the Cosmos endpoint is the local server the Tiltfile runs.</summary>
    [Fact]
    public async Task EverySecretTiltsRenderReads_IsRenderedOrCreatedByTheTiltfile()
    {
        var tiltfile = File.ReadAllText(Path.Combine(Root, "Tiltfile"));
        var objects = await ChartTests.RenderAsync("values-region-a.yaml+../../tilt/values-dev.yaml");
        var rendered = objects.OfType<k8s.Models.V1Secret>().Select(secret => secret.Metadata.Name).ToHashSet();
        var read = objects.OfType<k8s.Models.V1Deployment>().SelectMany(deployment => deployment.Spec.Template.Spec.Containers)
            .SelectMany(container => container.Env ?? [])
            .Where(variable => variable.ValueFrom?.SecretKeyRef is { Optional: not true })
            .Select(variable => variable.ValueFrom.SecretKeyRef.Name)
            .ToHashSet();
        Assert.Contains("daprpayments-cosmos", read);
        foreach (var secret in read.Where(name => !rendered.Contains(name)))
        {
            Assert.Matches($"create secret generic {Regex.Escape(secret)} ", tiltfile);
        }

        Assert.Contains("'--set', 'cosmos.endpoint=https://{h}:{p}/'", tiltfile, StringComparison.Ordinal);
        Assert.Contains("@zeit/cosmosdb-server/lib/cli.js", tiltfile, StringComparison.Ordinal);
        var failover = objects.OfType<k8s.Models.V1Deployment>().Single(deployment => deployment.Metadata.Name.EndsWith("-failover", StringComparison.Ordinal));
        var env = failover.Spec.Template.Spec.Containers[0].Env.ToDictionary(variable => variable.Name);
        Assert.Equal(("Key", "true", "true"), (env["Cosmos__Auth"].Value, env["Cosmos__LimitToEndpoint"].Value, env["Cosmos__AcceptAnyServerCertificate"].Value));
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

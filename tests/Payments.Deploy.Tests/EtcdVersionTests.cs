using System.Text.RegularExpressions;
using k8s.Models;

namespace Payments.Deploy.Tests;

/// <summary>One etcd everywhere: the version the tests and the run command unpack (<c>scripts/install-etcd.sh</c>) is
/// the one the image installs (<c>Dockerfile.etcd</c>), and the tag the build gives that image is the one the chart
/// and the container suite deploy — so what was measured and tested is what a cluster runs.</summary>
public sealed partial class EtcdVersionTests
{
    private static string Root => HelmTool.RepositoryRoot;

    [Fact]
    public void TheScript_TheImage_AndTheChart_NameTheSameEtcd3_5()
    {
        var script = Single(File.ReadAllText(Path.Combine(Root, "scripts", "install-etcd.sh")), ScriptVersion());
        var image = Single(File.ReadAllText(Path.Combine(Root, "Dockerfile.etcd")), DockerfileVersion());
        Assert.Equal(script, image);
        var upstream = script.Split('-')[0]; // Debian's 3.5.16-4 is etcd 3.5.16
        Assert.StartsWith("3.5.", upstream, StringComparison.Ordinal);

        var tag = $"daprpayments/etcd:{upstream}";
        Assert.Contains($"-t \"$PREFIX/etcd:{upstream}\"", File.ReadAllText(Path.Combine(Root, "scripts", "build-images.sh")), StringComparison.Ordinal);
        Assert.Contains($"image: {tag}", File.ReadAllText(Path.Combine(Root, "charts", "daprpayments", "values.yaml")), StringComparison.Ordinal);
        Assert.Contains($"\"{tag}\"", File.ReadAllText(Path.Combine(Root, "tests", "Payments.Containers.Tests", "ContainerSystem.cs")), StringComparison.Ordinal);
    }

    /// <summary>Liveness asks about the member only and ignores a NOSPACE alarm (etcd 3.5.3+): a member must not be
    /// restarted because the cluster lost its leader or ran out of space. Readiness keeps the whole-cluster check and
    /// ignores NOSPACE too: the rolling update that raises the quota waits for each restarted member to be ready, and
    /// the alarm stays armed (cluster-wide) until every member has the new quota.</summary>
    [Fact]
    public async Task TheMembersProbes_IgnoreNoSpace_AndLivenessIsSerializable()
    {
        var objects = await ChartTests.RenderAsync(valuesFile: null);
        var etcd = Assert.Single(objects.OfType<V1StatefulSet>(), set => set.Metadata.Name.EndsWith("-etcd", StringComparison.Ordinal));
        var container = etcd.Spec.Template.Spec.Containers.Single();
        Assert.Equal("/health?serializable=true&exclude=NOSPACE", container.LivenessProbe.HttpGet.Path);
        Assert.Equal("/health?exclude=NOSPACE", container.ReadinessProbe.HttpGet.Path);
    }

    private static string Single(string text, Regex pattern) => Assert.Single(pattern.Matches(text)).Groups["version"].Value;

    [GeneratedRegex(@"^ETCD_DEB_VERSION=(?<version>[0-9][^ \n]*)", RegexOptions.Multiline)]
    private static partial Regex ScriptVersion();

    [GeneratedRegex(@"^ARG ETCD_DEB_VERSION=(?<version>[0-9][^ \n]*)", RegexOptions.Multiline)]
    private static partial Regex DockerfileVersion();
}

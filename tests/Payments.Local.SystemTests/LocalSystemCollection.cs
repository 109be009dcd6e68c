namespace Payments.Local.SystemTests;

/// <summary>The system tests start whole systems (up to two regions of a 3-member etcd cluster and eight processes
/// each): one at a time, or on a two-core machine they starve each other and every bound becomes a race.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class LocalSystemCollection
{
    public const string Name = "local-system";
}

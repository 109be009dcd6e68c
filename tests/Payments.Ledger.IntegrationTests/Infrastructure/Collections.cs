using Payments.Testing;

namespace Payments.Ledger.IntegrationTests.Infrastructure;

/// <summary>Tests that only read and write their own prefix share one cluster.</summary>
[CollectionDefinition(Name)]
public sealed class EtcdCollection : ICollectionFixture<EtcdClusterFixture>
{
    public const string Name = "etcd";
}

/// <summary>Tests that kill and pause members get a cluster of their own.</summary>
[CollectionDefinition(Name)]
public sealed class FaultyEtcdCollection : ICollectionFixture<FaultyEtcdClusterFixture>
{
    public const string Name = "etcd-faults";
}

namespace Payments.Etcd;

/// <summary>A compare-and-swap used up its bounded rounds because others kept changing the key: nothing was written
/// by this attempt, and a retry later can succeed. An <see cref="InvalidOperationException"/>, so code that treated
/// these as such before still does; the API answers it 503 with Retry-After, not 500 (the caller did nothing wrong).</summary>
public sealed class EtcdContentionException(string message) : InvalidOperationException(message);

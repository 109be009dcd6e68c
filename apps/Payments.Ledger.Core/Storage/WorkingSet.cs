using Google.Protobuf;

namespace Payments.Ledger.Core.Storage;

/// <summary>A value as etcd returned it; <see cref="ModRevision"/> 0 means the key was absent. <see cref="Version"/>
/// is etcd's count of the key's writes since its creation (0 when unknown: a value the ledger cached after its own write).</summary>
internal readonly record struct StoredValue(ByteString? Value, long ModRevision, long Version = 0)
{
    public static readonly StoredValue Absent = new(null, 0);

    public bool Exists => Value is not null;
}

/// <summary>The keys one ledger operation read (with the revisions it saw) and the records it means to write.</summary>
/// <remarks>Evaluation runs against this set in memory; the write transaction then compares every written key's
/// revision with what was read here, so a concurrent change makes the whole transaction fail instead of being lost.</remarks>
internal sealed class WorkingSet
{
    private readonly Dictionary<string, StoredValue> reads = new(StringComparer.Ordinal);
    private readonly Dictionary<string, object> decoded = new(StringComparer.Ordinal);
    private readonly Dictionary<string, object?> writes = new(StringComparer.Ordinal);
    private readonly HashSet<string> missing = new(StringComparer.Ordinal);

    public IReadOnlyCollection<string> Missing => missing;

    public IReadOnlyDictionary<string, object?> Writes => writes;

    /// <summary>Every key read, with the value and mod revision it was read at (0: absent).</summary>
    public IReadOnlyDictionary<string, StoredValue> Reads => reads;

    public void AddRead(string key, StoredValue value)
    {
        reads[key] = value;
        decoded.Remove(key);
    }

    /// <summary>Forgets everything: the next attempt re-reads from the cluster.</summary>
    public void Reset()
    {
        reads.Clear();
        decoded.Clear();
        StartEvaluation();
    }

    /// <summary>Drops planned writes (not reads) before evaluating again.</summary>
    public void StartEvaluation()
    {
        writes.Clear();
        missing.Clear();
    }

    /// <summary>The revision this operation saw, or null for a key it writes blind (the expiry index, whose entries
    /// are unique per pending transfer and guarded by the hold's own compare).</summary>
    public long? ReadRevision(string key) => reads.TryGetValue(key, out var value) ? value.ModRevision : null;

    /// <summary>What this operation read at <paramref name="key"/>, or null when it did not read it.</summary>
    public StoredValue? Read(string key) => reads.TryGetValue(key, out var value) ? value : null;

    public long ReadModRevisionOrThrow(string key) =>
        reads.TryGetValue(key, out var value) ? value.ModRevision : throw new InvalidOperationException($"{key} was not read.");

    /// <summary>The current record at <paramref name="key"/>: known and present, known absent, or unknown (then noted as missing).</summary>
    public Lookup<T> Get<T>(string key, Func<ByteString, T> decode)
        where T : class
    {
        if (writes.TryGetValue(key, out var written))
        {
            return written is T record ? Lookup<T>.Found(record) : Lookup<T>.Absent;
        }

        if (!reads.TryGetValue(key, out var stored))
        {
            missing.Add(key);
            return Lookup<T>.Unknown;
        }

        if (!stored.Exists)
        {
            return Lookup<T>.Absent;
        }

        if (!decoded.TryGetValue(key, out var value))
        {
            value = decode(stored.Value!);
            decoded[key] = value;
        }

        return Lookup<T>.Found((T)value);
    }

    public void Put(string key, object record) => writes[key] = record;

    public void Delete(string key) => writes[key] = null;
}

internal readonly record struct Lookup<T>(LookupState State, T? Value)
    where T : class
{
    public static Lookup<T> Unknown => new(LookupState.Unknown, null);

    public static Lookup<T> Absent => new(LookupState.Absent, null);

    public static Lookup<T> Found(T value) => new(LookupState.Found, value);
}

internal enum LookupState
{
    Unknown,
    Absent,
    Found,
}

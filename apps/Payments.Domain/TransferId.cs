using System.Diagnostics.CodeAnalysis;

namespace Payments.Domain;

/// <summary>A transfer's id: the unit of exactly-once. The same id is applied at most once, ever.</summary>
/// <remarks>Callers derive ids from their own stable references (a payment id plus a step name), so that a
/// retry or a replay carries the same id and the ledger recognises it.</remarks>
public sealed record TransferId
{
    public const int MaxLength = 128;

    private TransferId(string value) => Value = value;

    public string Value { get; }

    public static bool TryParse(string? value, [NotNullWhen(true)] out TransferId? id, out string? problem)
    {
        problem = Identifier.Problem(value, MaxLength, "A transfer id");
        id = problem is null ? new TransferId(value!) : null;
        return id is not null;
    }

    /// <exception cref="ArgumentException">The id is not valid; see <see cref="TryParse"/>.</exception>
    public static TransferId Parse(string value) =>
        TryParse(value, out var id, out var problem) ? id : throw new ArgumentException(problem, nameof(value));

    /// <summary>A stable child id, e.g. <c>pay_42</c> + <c>hold</c> → <c>pay_42:hold</c>. When that would pass
    /// <see cref="MaxLength"/>, the parent's end is replaced by a digest of the whole parent
    /// (<c>{start}.{sha256/16 hex}:{step}</c>): still stable and distinct per parent, where plain concatenation threw —
    /// and the ledger's hold-expiry sweep, deriving the expiry of a 122-character hold, stopped at every pass.</summary>
    public TransferId Derive(string step)
    {
        ArgumentException.ThrowIfNullOrEmpty(step);
        var plain = $"{Value}:{step}";
        if (plain.Length <= MaxLength)
        {
            return Parse(plain);
        }

        var digest = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(Value)))[..DigestLength];
        var keep = MaxLength - step.Length - DigestLength - 2;
        return keep > 0 ? Parse($"{Value[..keep]}.{digest}:{step}") : throw new ArgumentException($"A step name of {step.Length} characters leaves no room for the parent id.", nameof(step));
    }

    /// <summary>Hex digits of the parent's digest in a shortened derived id (64 bits: no two parents of one system meet).</summary>
    private const int DigestLength = 16;

    public override string ToString() => Value;
}

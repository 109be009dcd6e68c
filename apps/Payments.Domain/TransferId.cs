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

    /// <summary>A stable child id, e.g. <c>pay_42</c> + <c>hold</c> → <c>pay_42:hold</c>.</summary>
    public TransferId Derive(string step) => Parse($"{Value}:{step}");

    public override string ToString() => Value;
}

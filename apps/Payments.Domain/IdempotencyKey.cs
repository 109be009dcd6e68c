using System.Diagnostics.CodeAnalysis;

namespace Payments.Domain;

/// <summary>A client's Idempotency-Key header: 1–255 printable ASCII characters (Stripe's semantics).</summary>
public sealed record IdempotencyKey
{
    public const int MaxLength = 255;

    private IdempotencyKey(string value) => Value = value;

    public string Value { get; }

    public static bool TryParse(string? value, [NotNullWhen(true)] out IdempotencyKey? key, out string? problem)
    {
        key = null;
        if (string.IsNullOrEmpty(value))
        {
            problem = "The Idempotency-Key must not be empty.";
        }
        else if (value.Length > MaxLength)
        {
            problem = $"The Idempotency-Key must be at most {MaxLength} characters.";
        }
        else if (value.Any(c => c is < '!' or > '~'))
        {
            problem = "The Idempotency-Key may contain only printable ASCII characters without spaces.";
        }
        else
        {
            problem = null;
            key = new IdempotencyKey(value);
        }

        return key is not null;
    }

    /// <exception cref="ArgumentException">The key is not valid; see <see cref="TryParse"/>.</exception>
    public static IdempotencyKey Parse(string value) =>
        TryParse(value, out var key, out var problem) ? key : throw new ArgumentException(problem, nameof(value));

    public override string ToString() => Value;
}

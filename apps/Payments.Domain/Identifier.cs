using System.Buffers;

namespace Payments.Domain;

/// <summary>Shared validation for identifiers that end up inside etcd keys and URLs.</summary>
/// <remarks>A small, key-safe alphabet keeps keys unambiguous: no '/', so an id can never reach into
/// another key's prefix; no spaces or control characters, so logs and URLs need no escaping.</remarks>
internal static class Identifier
{
    private static readonly SearchValues<char> Allowed =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-");

    public static string? Problem(string? value, int maxLength, string what)
    {
        if (string.IsNullOrEmpty(value))
        {
            return $"{what} must not be empty.";
        }

        if (value.Length > maxLength)
        {
            return $"{what} must be at most {maxLength} characters.";
        }

        if (value.AsSpan().IndexOfAnyExcept(Allowed) >= 0)
        {
            return $"{what} may contain only letters, digits, '.', '_', ':' and '-'.";
        }

        return char.IsAsciiLetterOrDigit(value[0]) ? null : $"{what} must start with a letter or digit.";
    }
}

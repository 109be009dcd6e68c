using System.Globalization;
using System.Text;

namespace Payments.Api.Apis;

/// <summary>Characters a reader does not see, by context. A rune alone: control characters, line and paragraph
/// separators, every format character (zero-width spaces and joiners, bidirectional overrides, tags), variation
/// selectors, and letters and symbols that render as nothing (Hangul fillers, the braille blank, the combining grapheme
/// joiner). In free text some of them are what written text needs, and only there: a zero-width joiner or non-joiner
/// between two emoji or two letters of a script that joins (Arabic, Indic); tag characters inside a subdivision flag
/// (U+1F3F4, tags, U+E007F); a variation selector after a symbol, digit, '#', '*' or ideograph. Anywhere else they
/// hid text a person could not see in a dashboard — "Invoice 42" followed by an instruction spelled in tags.</summary>
internal static class HiddenText
{
    private const int ZeroWidthNonJoiner = 0x200C;
    private const int ZeroWidthJoiner = 0x200D;
    private const int WavingBlackFlag = 0x1F3F4;
    private const int CancelTag = 0xE007F;

    /// <summary>Whether <paramref name="rune"/> alone is unseen or a control (what an echo escapes, and what a URL
    /// refuses). Also a noncharacter (U+FDD0–U+FDEF, and the last two of every plane, U+FFFE, U+FFFF…), which Unicode
    /// keeps out of interchange and no font draws: a whole reference of them showed as nothing (a probe's finding).
    /// Other unassigned code points pass — .NET's tables lag Unicode (U+20C1, the Saudi riyal sign of Unicode 17, is
    /// unassigned to them) — and so does private use (U+F8FF, the Apple logo; gaiji in Japanese and Hong Kong names).</summary>
    public static bool IsHiddenOrControl(Rune rune) =>
        Rune.IsControl(rune) || IsVariationSelector(rune) || IsBlankGlyph(rune) || IsNoncharacter(rune)
        || Rune.GetUnicodeCategory(rune) is UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator or UnicodeCategory.Format;

    private static bool IsNoncharacter(Rune rune) => rune.Value is (>= 0xFDD0 and <= 0xFDEF) || (rune.Value & 0xFFFE) == 0xFFFE;

    /// <summary>Whether <paramref name="text"/> holds a rune a reader cannot see outside the contexts written text needs.</summary>
    public static bool Contains(string text)
    {
        var runes = text.EnumerateRunes().ToArray();
        var flagTags = -1; // tags since a flag (-1: not in one)
        for (var index = 0; index < runes.Length; index++)
        {
            var rune = runes[index];
            var previous = index > 0 ? runes[index - 1] : (Rune?)null;
            var next = index + 1 < runes.Length ? runes[index + 1] : (Rune?)null;
            bool flagPart;
            (flagPart, flagTags) = rune.Value switch
            {
                WavingBlackFlag => (true, 0),
                CancelTag when flagTags > 0 => (true, -1),
                _ when flagTags >= 0 && flagTags < MaxFlagTags && IsFlagTag(rune) => (true, flagTags + 1),
                _ => (false, -1),
            };
            if (!IsHiddenOrControl(rune) || flagPart || IsNeeded(rune, previous, next))
            {
                continue;
            }

            return true;
        }

        return false;
    }

    /// <summary>Tags in a subdivision flag at most: a region's two letters and a subdivision's up to four (gbsct).</summary>
    private const int MaxFlagTags = 6;

    private static bool IsNeeded(Rune rune, Rune? previous, Rune? next) => rune.Value switch
    {
        ZeroWidthJoiner or ZeroWidthNonJoiner => previous is { } before && next is { } after
            && ((IsEmojiSide(before) && IsEmojiSide(after)) || (IsJoiningScript(before) && IsJoiningScript(after))),
        >= 0x180B and <= 0x180F => previous is { Value: >= 0x1820 and <= 0x18AF }, // after a Mongolian letter
        _ => IsVariationSelector(rune) && previous is { } baseRune && IsVariationBase(baseRune),
    };

    /// <summary>The tag forms of a-z and 0-9, what subdivision flags spell with.</summary>
    private static bool IsFlagTag(Rune rune) => rune.Value is (>= 0xE0061 and <= 0xE007A) or (>= 0xE0030 and <= 0xE0039);

    private static bool IsVariationSelector(Rune rune) => rune.Value is (>= 0xFE00 and <= 0xFE0F) or (>= 0xE0100 and <= 0xE01EF);

    /// <summary>Letters and symbols that render as nothing: Hangul fillers, the braille blank, the combining grapheme
    /// joiner, Khmer's inherent vowels, Mongolian free variation selectors.</summary>
    private static bool IsBlankGlyph(Rune rune) =>
        rune.Value is 0x115F or 0x1160 or 0x3164 or 0xFFA0 or 0x2800 or 0x034F or 0x17B4 or 0x17B5 or (>= 0x180B and <= 0x180F);

    /// <summary>An emoji on either side of a joiner: a symbol, a skin tone (a modifier symbol) or an emoji's variation selector.</summary>
    private static bool IsEmojiSide(Rune rune) =>
        rune.Value == 0xFE0F || Rune.GetUnicodeCategory(rune) is UnicodeCategory.OtherSymbol or UnicodeCategory.ModifierSymbol;

    /// <summary>Letters and marks of the scripts whose spelling uses joiners: Arabic, Syriac, Thaana, NKo, the Indic
    /// scripts, Myanmar, Khmer and Mongolian.</summary>
    private static bool IsJoiningScript(Rune rune) =>
        rune.Value is (>= 0x0600 and <= 0x0DFF) or (>= 0x08A0 and <= 0x08FF) or (>= 0x1000 and <= 0x109F) or (>= 0x1780 and <= 0x18AF)
            or (>= 0xFB50 and <= 0xFDFF) or (>= 0xFE70 and <= 0xFEFF)
        && Rune.GetUnicodeCategory(rune) is UnicodeCategory.OtherLetter or UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark;

    /// <summary>What a variation selector may follow: a symbol or punctuation (emoji such as ‼️ are punctuation), a
    /// digit, '#', '*' (keycaps) or an ideograph; a Mongolian free variation selector, a Mongolian letter.</summary>
    private static bool IsVariationBase(Rune rune) =>
        rune.Value is '#' or '*'
        || Rune.GetUnicodeCategory(rune) is UnicodeCategory.OtherSymbol or UnicodeCategory.MathSymbol or UnicodeCategory.ModifierSymbol
            or UnicodeCategory.OtherPunctuation or UnicodeCategory.DashPunctuation or UnicodeCategory.DecimalDigitNumber or UnicodeCategory.OtherLetter;
}

using System.Globalization;
using System.Text;

namespace DBSync.Protocol.Wire;

/// <summary>
/// Text the server chose (SASL mechanism names, SCRAM messages, ErrorResponse fields, certificate names) as it may appear
/// in an exception message or a log entry: control characters, line and paragraph separators and bidirectional overrides
/// are written as escapes (<c>\n</c>, <c>\u001b</c>), so a hostile server cannot forge log lines or hide text. The one
/// place that does this; everything that quotes the server goes through it. Pure.
/// </summary>
internal static class ServerText
{
    /// <summary><paramref name="text"/> with every character that could break a line or reorder text escaped; the same
    /// string when there is none (the usual case: no allocation). Idempotent: escaping twice changes nothing more.</summary>
    public static string Escape(string text)
    {
        var first = 0;
        while (first < text.Length && !MustEscape(text[first]))
            first++;
        if (first == text.Length)
            return text;

        var escaped = new StringBuilder(text.Length + 16).Append(text, 0, first);
        for (var i = first; i < text.Length; i++)
        {
            var c = text[i];
            if (!MustEscape(c))
            {
                escaped.Append(c);
                continue;
            }
            escaped.Append(c switch
            {
                '\n' => @"\n",
                '\r' => @"\r",
                '\t' => @"\t",
                '\0' => @"\0",
                _ => string.Create(CultureInfo.InvariantCulture, $@"\u{(int)c:x4}"),
            });
        }
        return escaped.ToString();
    }

    /// <summary><paramref name="text"/> escaped and between double quotes, for a name or value inside a sentence.</summary>
    public static string Quote(string text) => $"\"{Escape(text)}\"";

    /// <summary>Names escaped, quoted and separated by commas (a SASL offer).</summary>
    public static string QuoteAll(IEnumerable<string> texts) => string.Join(", ", texts.Select(Quote));

    private static bool MustEscape(char c)
        => char.IsControl(c)
           || c is '\u2028' or '\u2029' // line and paragraph separators
           || c is '\u200e' or '\u200f' or (>= '\u202a' and <= '\u202e') or (>= '\u2066' and <= '\u2069'); // bidirectional marks and overrides
}

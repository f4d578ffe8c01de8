using System.Globalization;

namespace DBSync.Cli.Output;

/// <summary>Numbers and times as the CLI prints them: invariant culture, UTC.</summary>
internal static class Units
{
    private static readonly string[] s_byteUnits = ["B", "KiB", "MiB", "GiB", "TiB"];

    /// <summary><c>0 B</c>, <c>512 B</c>, <c>12.1 KiB</c>, <c>3.0 GiB</c>.</summary>
    public static string Bytes(long? bytes)
    {
        if (bytes is not { } value)
            return "";
        double size = value;
        var unit = 0;
        while (Math.Abs(size) >= 1024 && unit < s_byteUnits.Length - 1)
        {
            size /= 1024;
            unit++;
        }
        return unit == 0 ? $"{value} B" : string.Create(CultureInfo.InvariantCulture, $"{size:0.0} {s_byteUnits[unit]}");
    }

    public static string Count(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    public static string Number(long? value) => value?.ToString(CultureInfo.InvariantCulture) ?? "";

    public static string Time(DateTime utc) => utc.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    public static string YesNo(bool value) => value ? "yes" : "no";

    /// <summary>A key of one or more columns, as progress notifications print it: <c>42</c>, <c>(7, 'r-003')</c>; empty when none.</summary>
    public static string Key(IReadOnlyList<string>? key) => key is null ? "" : KeyText.Format(key);
}

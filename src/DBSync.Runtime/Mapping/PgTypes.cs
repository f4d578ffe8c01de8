using System.Globalization;

namespace DBSync;

/// <summary>
/// A PostgreSQL <c>date</c> exactly as stored: any day PostgreSQL accepts (4713 BC to 5874897 AD), and <c>infinity</c>
/// and <c>-infinity</c>. Map a <c>date</c> column to it when those can occur; <see cref="DateOnly"/> holds years 1 to 9999 and
/// no infinities, and a value outside that is a <see cref="DecodeException"/>, never a substitute.
/// </summary>
public readonly record struct PgDate
{
    private const int PostgresEpochDayNumber = 730119; // new DateOnly(2000, 1, 1).DayNumber

    /// <summary>Creates a date from its day number: days since 2000-01-01 (PostgreSQL's epoch), as <c>date_send</c> writes it.
    /// <see cref="int.MaxValue"/> is <c>infinity</c> and <see cref="int.MinValue"/> is <c>-infinity</c>.</summary>
    public PgDate(int daysSince2000) => DaysSince2000 = daysSince2000;

    /// <summary>Creates a finite date.</summary>
    public PgDate(DateOnly date) => DaysSince2000 = date.DayNumber - PostgresEpochDayNumber;

    /// <summary><c>infinity</c>: later than every date.</summary>
    public static PgDate PositiveInfinity { get; } = new(int.MaxValue);

    /// <summary><c>-infinity</c>: earlier than every date.</summary>
    public static PgDate NegativeInfinity { get; } = new(int.MinValue);

    /// <summary>Days since 2000-01-01; <see cref="int.MaxValue"/> and <see cref="int.MinValue"/> are the infinities.</summary>
    public int DaysSince2000 { get; }

    /// <summary>Whether this is <c>infinity</c>.</summary>
    public bool IsPositiveInfinity => DaysSince2000 == int.MaxValue;

    /// <summary>Whether this is <c>-infinity</c>.</summary>
    public bool IsNegativeInfinity => DaysSince2000 == int.MinValue;

    /// <summary>Whether this is a date, not an infinity.</summary>
    public bool IsFinite => !IsPositiveInfinity && !IsNegativeInfinity;

    /// <summary>The date as a <see cref="DateOnly"/>, when it is finite and in years 1 to 9999.</summary>
    public bool TryGetDateOnly(out DateOnly date)
    {
        var dayNumber = (long)PostgresEpochDayNumber + DaysSince2000;
        if (!IsFinite || dayNumber < DateOnly.MinValue.DayNumber || dayNumber > DateOnly.MaxValue.DayNumber)
        {
            date = default;
            return false;
        }
        date = DateOnly.FromDayNumber((int)dayNumber);
        return true;
    }

    /// <summary>The date as a <see cref="DateOnly"/>.</summary>
    /// <exception cref="InvalidOperationException">It is an infinity or outside years 1 to 9999.</exception>
    public DateOnly ToDateOnly() => TryGetDateOnly(out var date)
        ? date
        : throw new InvalidOperationException($"The date {this} cannot be a DateOnly (years 1 to 9999, no infinities).");

    /// <summary>PostgreSQL's ISO text: <c>2024-02-29</c>, <c>0044-03-15 BC</c>, <c>infinity</c>.</summary>
    public override string ToString()
    {
        if (IsPositiveInfinity)
            return "infinity";
        if (IsNegativeInfinity)
            return "-infinity";
        var (year, month, day) = PgCalendar.CivilFromDays(DaysSince2000);
        return PgCalendar.FormatDate(year, month, day);
    }
}

/// <summary>
/// A PostgreSQL <c>timestamp</c> or <c>timestamptz</c> exactly as stored: microseconds since 2000-01-01 00:00 (UTC for
/// <c>timestamptz</c>), any instant PostgreSQL accepts, and <c>infinity</c> and <c>-infinity</c>. Map a column to it when
/// those can occur; <see cref="DateTime"/> holds years 1 to 9999 and no infinities, and a value outside that is a
/// <see cref="DecodeException"/>, never a substitute.
/// </summary>
public readonly record struct PgTimestamp
{
    private const long PostgresEpochTicks = 630822816000000000; // new DateTime(2000, 1, 1).Ticks

    /// <summary>Creates a timestamp from microseconds since 2000-01-01 00:00, as <c>timestamp_send</c> writes it;
    /// <see cref="long.MaxValue"/> is <c>infinity</c> and <see cref="long.MinValue"/> is <c>-infinity</c>.</summary>
    /// <param name="microsecondsSince2000">The value.</param>
    /// <param name="kind"><see cref="DateTimeKind.Utc"/> for a <c>timestamptz</c>, <see cref="DateTimeKind.Unspecified"/> for a <c>timestamp</c>.</param>
    public PgTimestamp(long microsecondsSince2000, DateTimeKind kind)
    {
        MicrosecondsSince2000 = microsecondsSince2000;
        Kind = kind;
    }

    /// <summary>Microseconds since 2000-01-01 00:00; <see cref="long.MaxValue"/> and <see cref="long.MinValue"/> are the infinities.</summary>
    public long MicrosecondsSince2000 { get; }

    /// <summary><see cref="DateTimeKind.Utc"/> for a <c>timestamptz</c>, <see cref="DateTimeKind.Unspecified"/> for a <c>timestamp</c>.</summary>
    public DateTimeKind Kind { get; }

    /// <summary>Whether this is <c>infinity</c>.</summary>
    public bool IsPositiveInfinity => MicrosecondsSince2000 == long.MaxValue;

    /// <summary>Whether this is <c>-infinity</c>.</summary>
    public bool IsNegativeInfinity => MicrosecondsSince2000 == long.MinValue;

    /// <summary>Whether this is an instant, not an infinity.</summary>
    public bool IsFinite => !IsPositiveInfinity && !IsNegativeInfinity;

    /// <summary>The value as a <see cref="DateTime"/> of this <see cref="Kind"/>, when it is finite and in years 1 to 9999.</summary>
    public bool TryGetDateTime(out DateTime value)
    {
        var ticks = (Int128)MicrosecondsSince2000 * TimeSpan.TicksPerMicrosecond + PostgresEpochTicks;
        if (!IsFinite || ticks < DateTime.MinValue.Ticks || ticks > DateTime.MaxValue.Ticks)
        {
            value = default;
            return false;
        }
        value = new DateTime((long)ticks, Kind);
        return true;
    }

    /// <summary>The value as a <see cref="DateTime"/> of this <see cref="Kind"/>.</summary>
    /// <exception cref="InvalidOperationException">It is an infinity or outside years 1 to 9999.</exception>
    public DateTime ToDateTime() => TryGetDateTime(out var value)
        ? value
        : throw new InvalidOperationException($"The timestamp {this} cannot be a DateTime (years 1 to 9999, no infinities).");

    /// <summary>PostgreSQL's ISO text (UTC, with <c>+00</c>, for a <c>timestamptz</c>): <c>2024-02-29 23:59:59.999999</c>, <c>infinity</c>.</summary>
    public override string ToString()
    {
        if (IsPositiveInfinity)
            return "infinity";
        if (IsNegativeInfinity)
            return "-infinity";
        var days = MicrosecondsSince2000 / PgCalendar.MicrosecondsPerDay;
        var timeOfDay = MicrosecondsSince2000 % PgCalendar.MicrosecondsPerDay;
        if (timeOfDay < 0)
        {
            days--;
            timeOfDay += PgCalendar.MicrosecondsPerDay;
        }
        var (year, month, day) = PgCalendar.CivilFromDays(days);
        var date = PgCalendar.FormatDate(year, month, day);
        var bc = date.EndsWith(" BC", StringComparison.Ordinal);
        var text = (bc ? date[..^3] : date) + " " + PgCalendar.FormatTime(timeOfDay) + (Kind == DateTimeKind.Utc ? "+00" : "");
        return bc ? text + " BC" : text;
    }
}

/// <summary>A PostgreSQL <c>timetz</c>: a time of day (00:00 to 24:00 inclusive, microsecond precision) and the UTC offset it
/// was written with (up to ±15:59:59, whole seconds; east of Greenwich is positive).</summary>
/// <param name="TimeOfDay">The local time of day; <c>24:00:00</c> is one day.</param>
/// <param name="Offset">The offset from UTC, positive east of Greenwich (<c>+02</c> is two hours).</param>
public readonly record struct PgTimeTz(TimeSpan TimeOfDay, TimeSpan Offset)
{
    /// <summary>PostgreSQL's text: <c>12:34:56.789+02</c>.</summary>
    public override string ToString()
    {
        var offset = Offset < TimeSpan.Zero ? -Offset : Offset;
        var text = PgCalendar.FormatTime(TimeOfDay.Ticks / TimeSpan.TicksPerMicrosecond) + (Offset < TimeSpan.Zero ? "-" : "+")
            + offset.Hours.ToString("00", CultureInfo.InvariantCulture);
        if (offset.Minutes != 0 || offset.Seconds != 0)
            text += ":" + offset.Minutes.ToString("00", CultureInfo.InvariantCulture);
        if (offset.Seconds != 0)
            text += ":" + offset.Seconds.ToString("00", CultureInfo.InvariantCulture);
        return text;
    }
}

/// <summary>
/// A PostgreSQL <c>interval</c> exactly as stored: months, days and microseconds, which PostgreSQL keeps apart (a month is
/// not a fixed number of days, nor a day of hours across a DST change). <see cref="TimeSpan"/> holds an interval exactly
/// only when it has no months; map the column to this type when it may.
/// </summary>
/// <param name="Months">Months (years are 12 months).</param>
/// <param name="Days">Days.</param>
/// <param name="Microseconds">The time part, in microseconds.</param>
public readonly record struct PgInterval(int Months, int Days, long Microseconds)
{
    /// <summary>Whether this is PostgreSQL 17's <c>infinity</c> or <c>-infinity</c> interval.</summary>
    public bool IsInfinity => (Months, Days, Microseconds) is (int.MaxValue, int.MaxValue, long.MaxValue) or (int.MinValue, int.MinValue, long.MinValue);

    /// <summary>The interval as a <see cref="TimeSpan"/> (a day as 24 hours), when it has no months and fits.</summary>
    public bool TryGetTimeSpan(out TimeSpan value)
    {
        var ticks = ((Int128)Days * PgCalendar.MicrosecondsPerDay + Microseconds) * TimeSpan.TicksPerMicrosecond;
        if (Months != 0 || IsInfinity || ticks < TimeSpan.MinValue.Ticks || ticks > TimeSpan.MaxValue.Ticks)
        {
            value = default;
            return false;
        }
        value = new TimeSpan((long)ticks);
        return true;
    }

    /// <summary>ISO 8601 text, as PostgreSQL writes it with <c>IntervalStyle = iso_8601</c>: <c>P1Y2M3DT4H5M6.5S</c>.</summary>
    public override string ToString()
    {
        if (IsInfinity)
            return Months > 0 ? "infinity" : "-infinity";
        if (Months == 0 && Days == 0 && Microseconds == 0)
            return "PT0S";
        var text = new System.Text.StringBuilder("P");
        Part(text, Months / 12, 'Y');
        Part(text, Months % 12, 'M');
        Part(text, Days, 'D');
        if (Microseconds != 0)
        {
            text.Append('T');
            Part(text, Microseconds / 3_600_000_000, 'H');
            Part(text, Microseconds / 60_000_000 % 60, 'M');
            var seconds = Microseconds % 60_000_000;
            if (seconds != 0)
            {
                text.Append(seconds < 0 ? "-" : "").Append(Math.Abs(seconds / 1_000_000).ToString(CultureInfo.InvariantCulture));
                var fraction = Math.Abs(seconds % 1_000_000);
                if (fraction != 0)
                    text.Append('.').Append(fraction.ToString("000000", CultureInfo.InvariantCulture).TrimEnd('0'));
                text.Append('S');
            }
        }
        return text.ToString();

        static void Part(System.Text.StringBuilder text, long value, char unit)
        {
            if (value != 0)
                text.Append(value.ToString(CultureInfo.InvariantCulture)).Append(unit);
        }
    }
}

/// <summary>A PostgreSQL <c>inet</c> or <c>cidr</c> exactly: an address and its mask length, host bits included
/// (<c>192.168.0.1/24</c>, an interface address on its network), which neither <see cref="System.Net.IPAddress"/> nor
/// <see cref="System.Net.IPNetwork"/> holds.</summary>
/// <param name="Address">The address.</param>
/// <param name="PrefixLength">The mask length: 32 (IPv4) or 128 (IPv6) for a single address.</param>
public readonly record struct PgInet(System.Net.IPAddress Address, int PrefixLength)
{
    /// <summary>PostgreSQL's text: the address, and <c>/bits</c> unless the mask is the full length.</summary>
    public override string ToString()
        => PrefixLength == (Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128)
            ? Address.ToString()
            : string.Create(CultureInfo.InvariantCulture, $"{Address}/{PrefixLength}");
}

/// <summary>PostgreSQL's calendar: the proleptic Gregorian calendar with astronomical years (1 BC is year 0), counted in
/// days since 2000-01-01.</summary>
internal static class PgCalendar
{
    public const long MicrosecondsPerDay = 86_400_000_000;
    private const long DaysFrom1970To2000 = 10957;

    /// <summary>Days since 2000-01-01 of a civil date (year 0 is 1 BC). Counts 400-year eras of 146097 days.</summary>
    public static long DaysFromCivil(long year, int month, int day)
    {
        var y = month <= 2 ? year - 1 : year;
        var era = (y >= 0 ? y : y - 399) / 400;
        var yearOfEra = y - era * 400;
        var dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
        var dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear;
        return era * 146097 + dayOfEra - 719468 - DaysFrom1970To2000;
    }

    /// <summary>The civil date (year 0 is 1 BC) of a day count since 2000-01-01; the inverse of <see cref="DaysFromCivil"/>.</summary>
    public static (long Year, int Month, int Day) CivilFromDays(long daysSince2000)
    {
        var z = daysSince2000 + DaysFrom1970To2000 + 719468;
        var era = (z >= 0 ? z : z - 146096) / 146097;
        var dayOfEra = z - era * 146097;
        var yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146096) / 365;
        var dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100);
        var monthIndex = (5 * dayOfYear + 2) / 153;
        var day = (int)(dayOfYear - (153 * monthIndex + 2) / 5 + 1);
        var month = (int)(monthIndex < 10 ? monthIndex + 3 : monthIndex - 9);
        var year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0);
        return (year, month, day);
    }

    public static bool IsValid(long year, int month, int day)
        => month is >= 1 and <= 12 && day >= 1 && day <= DaysInMonth(year, month);

    private static int DaysInMonth(long year, int month) => month switch
    {
        2 => year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28,
        4 or 6 or 9 or 11 => 30,
        _ => 31,
    };

    /// <summary>ISO date text as PostgreSQL writes it: four digits at least, and <c> BC</c> for year 0 and before.</summary>
    public static string FormatDate(long year, int month, int day)
    {
        var bc = year <= 0;
        var shown = bc ? 1 - year : year;
        return string.Create(CultureInfo.InvariantCulture, $"{shown:0000}-{month:00}-{day:00}{(bc ? " BC" : "")}");
    }

    /// <summary><c>HH:MM:SS[.ffffff]</c> of a time of day in microseconds (24:00:00 included), trailing zeros dropped.</summary>
    public static string FormatTime(long microseconds)
    {
        var text = string.Create(CultureInfo.InvariantCulture,
            $"{microseconds / 3_600_000_000:00}:{microseconds / 60_000_000 % 60:00}:{microseconds / 1_000_000 % 60:00}");
        var fraction = microseconds % 1_000_000;
        return fraction == 0 ? text : text + "." + fraction.ToString("000000", CultureInfo.InvariantCulture).TrimEnd('0');
    }
}

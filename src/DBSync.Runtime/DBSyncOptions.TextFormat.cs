namespace DBSync;

public sealed partial class DBSyncOptions
{
    /// <summary>
    /// Values in PostgreSQL's text format instead of binary: the stream asks pgoutput for text tuples (as servers before 14
    /// send them) and snapshot queries ask for text results. Both formats decode to the same values; the tests run every
    /// type through both against a real server with this switch.
    /// </summary>
    internal bool TextFormat { get; set; }
}

using System.CommandLine;

namespace DBSync.Cli.Commands;

/// <summary>The options several commands take, named and described the same way everywhere.</summary>
internal static class CommonOptions
{
    public const string DefaultSlot = "dbsync";
    public const string DefaultCheckpointTable = "public.dbsync_checkpoint";
    public const string DefaultSignalTable = "dbsync_signal";

    /// <summary><c>--slot</c>: DBSync's default slot name unless <paramref name="required"/> (for what cannot be undone).</summary>
    public static Option<string> Slot(bool required = false)
    {
        var option = new Option<string>("--slot", "-s") { Description = "Replication slot of the pipeline (DBSyncOptions.SlotName)", Required = required };
        if (!required)
            option.DefaultValueFactory = _ => DefaultSlot;
        return option;
    }

    public static Option<string> CheckpointTable() => new("--checkpoint-table")
    {
        Description = "Table of the PostgresCheckpointStore the pipeline uses, [schema.]name",
        DefaultValueFactory = _ => DefaultCheckpointTable,
    };

    public static Option<string> SignalTable() => new("--signal-table")
    {
        Description = "Signal table of the pipeline (DBSyncOptions.SignalTable), [schema.]name",
        DefaultValueFactory = _ => DefaultSignalTable,
    };

    public static Option<int> Timeout() => new("--timeout")
    {
        Description = "Seconds to wait for DBSync to act on the signal",
        DefaultValueFactory = _ => 30,
    };

    /// <summary>The store the pipeline keeps its checkpoint in; a bad table name is a usage error.</summary>
    public static PostgresCheckpointStore Store(string connectionString, string table)
    {
        try
        {
            return new PostgresCheckpointStore(connectionString, table);
        }
        catch (ArgumentException e)
        {
            throw CliException.Usage("--checkpoint-table", e);
        }
    }
}

using System.Text;
using Npgsql;
using NpgsqlTypes;

namespace DBSync.Applying;

/// <summary>Writes a row's columns as the parameters of one statement: those <see cref="TargetTable.Includes"/> selects, typed
/// as <see cref="TargetColumn.WireType"/>, in column order.</summary>
internal readonly struct ParameterWriter(NpgsqlParameterCollection parameters, TargetTable table, bool keysOnly, ColumnSet skipped) : IRowWriter
{
    public void Write<T>(int column, T value)
    {
        var target = table.Columns[column];
        if (!TargetTable.Includes(target.Source, keysOnly, skipped))
            return;
        if (value is null)
            parameters.Add(new NpgsqlParameter { Value = DBNull.Value, NpgsqlDbType = target.WireType });
        else if (target.AsText)
            parameters.Add(new NpgsqlParameter<string> { TypedValue = ColumnValues.Text(value, target, table.DisplayName), NpgsqlDbType = NpgsqlDbType.Text });
        else
            parameters.Add(new NpgsqlParameter<T> { TypedValue = value, NpgsqlDbType = target.WireType });
    }
}

/// <summary>Writes a row's columns into a binary COPY of the staging table (whose columns have the wire types); with
/// <paramref name="keysOnly"/> (a staged delete) the other columns are null.</summary>
internal readonly struct CopyWriter(NpgsqlBinaryImporter importer, TargetTable table, bool keysOnly) : IRowWriter
{
    public void Write<T>(int column, T value)
    {
        var target = table.Columns[column];
        if (keysOnly && !target.Source.IsKey)
        {
            importer.WriteNull();
            return;
        }
        // Synchronous: the importer only touches the network when its buffer is full, and a ref-struct-free writer
        // cannot await inside the generated method.
        if (value is null)
            importer.WriteNull();
        else if (target.AsText)
            importer.Write(ColumnValues.Text(value, target, table.DisplayName), NpgsqlDbType.Text);
        else
            importer.Write(value, target.WireType);
    }
}

/// <summary>The key of a row as <c>(id=5, region='eu')</c>, for messages.</summary>
internal struct KeyDescriber(SyncTableInfo table) : IRowWriter
{
    private StringBuilder? _text;

    public void Write<T>(int column, T value)
    {
        var info = table.Columns[column];
        if (!info.IsKey)
            return;
        _text = _text is null ? new StringBuilder("(") : _text.Append(", ");
        _text.Append(info.Name).Append('=').Append(ColumnValues.Describe(value));
    }

    public override readonly string ToString() => _text is null ? "()" : _text.ToString() + ")";

    public static string Describe<T>(T row) where T : ISyncTable<T>
    {
        var describer = new KeyDescriber(T.TableInfo);
        T.WriteRow(row, ref describer);
        return describer.ToString();
    }
}

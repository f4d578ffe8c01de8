namespace DBSync.Protocol;

/// <summary>
/// The values of one row that fill an entity's properties: a pgoutput tuple (<see cref="TupleReader"/>) or a snapshot
/// row (<see cref="SnapshotRowReader"/>). Generated code reads an entity with one method generic over this interface
/// (<c>where TReader : IRowValues, allows ref struct</c>), so each reader gets code of its own, without boxing or an
/// interface call, and the decoding is written once.
/// </summary>
public interface IRowValues
{
    /// <summary>Moves to the next value that fills a property. The value is valid until the next call.</summary>
    bool TryReadNext(out TupleValue value);
}

namespace OrleansDif;

/// <summary>
/// Writeback errors kept by number, oldest first, at most <c>capacity</c> (the oldest are forgotten): what a mark has
/// not seen is every kept error numbered after it, and a mark older than what is kept is told that errors were
/// dropped, never told nothing. The flusher's error sequence keeps its errors in one; an NBD device keeps what its
/// fsyncs were told in another. Not thread-safe: its owner guards it.
/// </summary>
public sealed class WritebackErrorLog(int capacity)
{
    private readonly LinkedList<WritebackError> _kept = new();

    /// <summary>Errors numbered up to this one are forgotten (0: none).</summary>
    public long Dropped { get; private set; }

    /// <summary>The number of the newest error kept or forgotten (0: none).</summary>
    public long Last => _kept.Last?.Value.Sequence ?? Dropped;

    public IReadOnlyCollection<WritebackError> Kept => _kept;

    /// <summary>Appends <paramref name="error"/>, numbered after every error here.</summary>
    public void Add(WritebackError error)
    {
        _kept.AddLast(error);
        if (_kept.Count > capacity)
        {
            Dropped = _kept.First!.Value.Sequence;
            _kept.RemoveFirst();
        }
    }

    /// <summary>Marks errors up to <paramref name="sequence"/> forgotten (a log restored from a store that had dropped them).</summary>
    public void DroppedUpTo(long sequence) => Dropped = Math.Max(Dropped, sequence);

    /// <summary>The errors numbered after <paramref name="sequence"/>, oldest first; <paramref name="reporter"/> names a "dropped" entry.</summary>
    public WritebackError[] Since(long sequence, long reporter)
    {
        var errors = new List<WritebackError>();
        for (LinkedListNode<WritebackError>? n = _kept.Last; n is not null && n.Value.Sequence > sequence; n = n.Previous)
        {
            errors.Add(n.Value);
        }
        if (sequence < Dropped)
        {
            errors.Add(new WritebackError(reporter, Dropped, [], "older writeback errors were recorded and are no longer kept"));
        }
        errors.Reverse();
        return [.. errors];
    }
}

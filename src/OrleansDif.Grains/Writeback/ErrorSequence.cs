namespace OrleansDif.Grains;

/// <summary>
/// A volume's writeback errors as a sequence (Linux <c>errseq_t</c>, with the errors kept so that each can be named):
/// every recorded error gets the next number; a handle's mark says how far it has seen. Errors since a mark are those
/// numbered after it; a mark of another flusher activation (the sequence it counted died with it) sees every error
/// this activation kept, conservatively. The oldest errors are forgotten past <c>capacity</c>: a mark older than
/// what is kept is told that errors were dropped, never told nothing. Plain: no Orleans types.
/// </summary>
public sealed class ErrorSequence(long flusher, int capacity = 4096)
{
    private readonly LinkedList<WritebackError> _kept = new();
    private long _sequence;
    private long _dropped; // errors numbered up to this one are forgotten

    public long Flusher => flusher;

    /// <summary>Errors recorded by this activation.</summary>
    public long Recorded => _sequence;

    /// <summary>The mark of now: a handle opened now is told only errors recorded after this.</summary>
    public ErrorMark Sample() => new(flusher, _sequence);

    /// <summary>Records an error: <paramref name="pages"/> lost acknowledged writes, for <paramref name="cause"/>.</summary>
    public WritebackError Record(int[] pages, string cause)
    {
        var error = new WritebackError(flusher, ++_sequence, pages, cause);
        _kept.AddLast(error);
        if (_kept.Count > capacity)
        {
            _dropped = _kept.First!.Value.Sequence;
            _kept.RemoveFirst();
        }
        return error;
    }

    /// <summary>The errors recorded after <paramref name="mark"/>, oldest first.</summary>
    public WritebackError[] Since(ErrorMark mark)
    {
        long after = mark.Flusher == flusher ? mark.Sequence : 0;
        var errors = new List<WritebackError>();
        for (LinkedListNode<WritebackError>? n = _kept.Last; n is not null && n.Value.Sequence > after; n = n.Previous)
        {
            errors.Add(n.Value);
        }
        if (after < _dropped)
        {
            errors.Add(new WritebackError(flusher, _dropped, [], $"{_dropped - after} older writeback errors were recorded and are no longer kept"));
        }
        errors.Reverse();
        return [.. errors];
    }
}

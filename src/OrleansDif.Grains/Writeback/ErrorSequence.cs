namespace OrleansDif.Grains;

/// <summary>
/// A volume's writeback errors as a sequence (Linux <c>errseq_t</c>, with the errors kept so that each can be named):
/// every recorded error gets the next number; a handle's mark says how far it has seen, and the errors since a mark
/// are those numbered after it. The numbers go on across flusher activations: a new activation starts a block above
/// the last number its predecessors stored (<see cref="Gap"/>, as page epochs are reserved), so that an error a dead
/// activation numbered but never stored can never share a number with a later one, and it keeps the errors they
/// stored. The oldest errors are forgotten past <c>capacity</c>: a mark older than what is kept is told that errors
/// were dropped, never told nothing. Plain: no Orleans types.
/// </summary>
public sealed class ErrorSequence
{
    /// <summary>The numbers a new activation skips: more than an activation can record between two stores.</summary>
    public const long Gap = 1_000_000;

    private readonly long _flusher;
    private readonly WritebackErrorLog _log;
    private long _sequence;

    /// <param name="flusher">This flusher activation.</param>
    /// <param name="stored">
    /// What earlier activations stored (an empty state when none did): numbering starts a block above its sequence.
    /// The caller stores the new start before it answers anyone, so the next activation starts above this one's
    /// block. Null: numbering from 0 (a sequence that is never continued).
    /// </param>
    public ErrorSequence(long flusher, FlusherErrorState? stored = null, int capacity = 4096)
    {
        _flusher = flusher;
        _log = new WritebackErrorLog(capacity);
        if (stored is null)
        {
            return;
        }
        _log.DroppedUpTo(stored.Dropped);
        foreach (WritebackError e in stored.Errors.OrderBy(e => e.Sequence))
        {
            _log.Add(e);
        }
        _sequence = stored.Sequence + Gap;
        if (stored.CorruptionReason is string why)
        {
            // What earlier activations recorded cannot be read: every handle is told that errors may be gone.
            _log.DroppedUpTo(_sequence);
            Record([], $"the volume's stored writeback errors could not be read ({why}): errors may have been lost");
        }
    }

    /// <summary>The mark of now: a handle opened now is told only errors recorded after this.</summary>
    public ErrorMark Sample() => new(_flusher, _sequence);

    /// <summary>Records an error: <paramref name="pages"/> lost acknowledged writes, for <paramref name="cause"/>.</summary>
    public WritebackError Record(int[] pages, string cause)
    {
        var error = new WritebackError(_flusher, ++_sequence, pages, cause);
        _log.Add(error);
        return error;
    }

    /// <summary>The errors recorded after <paramref name="mark"/>, oldest first (whichever activation recorded them).</summary>
    public WritebackError[] Since(ErrorMark mark) => _log.Since(mark.Sequence, _flusher);

    /// <summary>What to store so that a later activation goes on from here.</summary>
    public FlusherErrorState ToStore() => new() { Sequence = _sequence, Dropped = _log.Dropped, Errors = [.. _log.Kept] };
}

/// <summary>What a volume's flusher stores of its error sequence: the last number and the errors kept.</summary>
[GenerateSerializer]
public sealed class FlusherErrorState : IStateCorruption
{
    [Id(0)] public long Sequence { get; set; }
    [Id(1)] public long Dropped { get; set; }
    [Id(2)] public List<WritebackError> Errors { get; set; } = [];
    [Id(3)] public string? CorruptionReason { get; set; }
}

namespace OrleansDif.Grains;

/// <summary>
/// What a writeback policy decides, read where the decision is taken (as Linux reads one mapping flag in
/// <c>folio_wait_stable</c>): the page asks it whether a writer waits and what writeback may read; the flusher asks it
/// whether the guard tags cached at copy-in may be reused. Fixed per volume.
/// </summary>
public interface IWritebackPolicy
{
    /// <summary>The policy this is.</summary>
    WritebackPolicy Kind { get; }

    /// <summary>
    /// A write to a page under writeback waits (or is refused, without wait) until writeback ends, and writable
    /// mappings are revoked when writeback starts, so that their next store faults and waits too.
    /// </summary>
    bool HoldsWriters { get; }

    /// <summary>Writeback gets a private copy of the page (a bounce buffer); writers go on with the live page.</summary>
    bool CopiesAtStart { get; }

    /// <summary>
    /// The data sent to the disk is read from the live page at transfer time, after the tags were built from an
    /// earlier read (a controller's DMA): writers that went on in between make the guard tags wrong.
    /// </summary>
    bool ReadsAgainAtTransfer { get; }

    /// <summary>The flusher may reuse the guard tags cached at copy-in for sectors that have not changed since.</summary>
    bool ReusesCachedTags { get; }

    /// <summary>
    /// When a writeback's lease expires, the writeback may still be reading the page's own buffer (no copy was made
    /// for it): the page must switch to a private copy before it takes another write.
    /// </summary>
    bool SharesLiveBuffer => !CopiesAtStart;
}

/// <summary>The policy object of each <see cref="WritebackPolicy"/>.</summary>
public static class WritebackPolicies
{
    public static readonly IWritebackPolicy Stable = new StablePolicy();
    public static readonly IWritebackPolicy Bounce = new BouncePolicy();
    public static readonly IWritebackPolicy Unstable = new UnstablePolicy();

    public static IWritebackPolicy For(WritebackPolicy policy) => policy switch
    {
        WritebackPolicy.Stable => Stable,
        WritebackPolicy.Bounce => Bounce,
        WritebackPolicy.Unstable => Unstable,
        _ => throw new StorageException(StorageError.InvalidConfig, $"unknown writeback policy {policy}"),
    };
}

namespace OrleansDif.Grains;

/// <summary>
/// Bounce buffers (what ext3 and the block layer's bounce pages did): writeback takes a private copy of the page when
/// it starts, so writers never wait; the copy, not the page, is what the tags describe. Costs one page copy per
/// writeback.
/// </summary>
public sealed class BouncePolicy : IWritebackPolicy
{
    public WritebackPolicy Kind => WritebackPolicy.Bounce;
    public bool HoldsWriters => false;
    public bool CopiesAtStart => true;
    public bool ReadsAgainAtTransfer => false;
    public bool ReusesCachedTags => true;
}

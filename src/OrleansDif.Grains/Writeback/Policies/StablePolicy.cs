namespace OrleansDif.Grains;

/// <summary>
/// Stable pages (Linux since 3.9, <c>wait_for_stable_page</c>): a page does not change while it is written back.
/// Writers wait for writeback to end, so writeback can send the page's own buffer, and the guard tags cached when the
/// data was copied in are still right when it lands.
/// </summary>
public sealed class StablePolicy : IWritebackPolicy
{
    public WritebackPolicy Kind => WritebackPolicy.Stable;
    public bool HoldsWriters => true;
    public bool CopiesAtStart => false;
    public bool ReadsAgainAtTransfer => false;
    public bool ReusesCachedTags => true;
}

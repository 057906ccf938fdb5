namespace OrleansDif.Grains;

/// <summary>
/// No stable pages (Linux before 3.9): writers go on while the page is written back and the controller reads the page
/// again when it transfers it. Tags are computed from one read and the data comes from a later one, so a write in
/// between reaches the disk with a guard tag that does not match: the 2010 bug, kept to be measured. Cached tags are
/// never trusted.
/// </summary>
public sealed class UnstablePolicy : IWritebackPolicy
{
    public WritebackPolicy Kind => WritebackPolicy.Unstable;
    public bool HoldsWriters => false;
    public bool CopiesAtStart => false;
    public bool ReadsAgainAtTransfer => true;
    public bool ReusesCachedTags => false;
}

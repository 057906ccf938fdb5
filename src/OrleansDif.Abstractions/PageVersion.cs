namespace OrleansDif;

/// <summary>
/// Page versions: the epoch of the page activation that made the version (handed out by the page's disk, never
/// twice) in the high bits, a count of the activation's writes in the low 24. Versions of a later activation are
/// always greater than every version of an earlier one, so the disk can fence by comparing numbers: a writeback of
/// an activation that died can never land over what a later activation wrote.
/// </summary>
public static class PageVersion
{
    public const int CountBits = 24;

    /// <summary>Writes one activation may make before it takes a new epoch.</summary>
    public const long MaxCount = (1L << CountBits) - 1;

    /// <summary>The floor of an epoch: below every version it makes.</summary>
    public static long First(long epoch) => epoch << CountBits;

    public static long EpochOf(long version) => version >> CountBits;

    public static long CountOf(long version) => version & MaxCount;

    /// <summary>"epoch.count", for logs.</summary>
    public static string Format(long version) => $"{EpochOf(version)}.{CountOf(version)}";
}

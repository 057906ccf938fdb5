namespace OrleansDif;

/// <summary>Where page grains are activated.</summary>
public static class PagePlacement
{
    /// <summary>
    /// A request-context key: a call carrying it (value true) that activates a page activates it on the calling silo,
    /// as a host's page cache is on the host that does the I/O (the NBD front end inside a silo sets it). Without it
    /// pages go to a random silo.
    /// </summary>
    public const string LocalKey = "orleansdif-page-local";
}

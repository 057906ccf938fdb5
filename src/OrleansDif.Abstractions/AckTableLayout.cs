namespace OrleansDif;

/// <summary>Where the acknowledged-version tables live under a data directory (silos write them, a power loss takes them).</summary>
public static class AckTableLayout
{
    /// <summary>The folder of the tables, one file per volume.</summary>
    public static string Directory(string dataDirectory) => Path.Combine(dataDirectory, "acks");

    /// <summary>The table of <paramref name="volume"/>.</summary>
    public static string TablePath(string dataDirectory, string volume) => Path.Combine(Directory(dataDirectory), volume + ".acks");
}

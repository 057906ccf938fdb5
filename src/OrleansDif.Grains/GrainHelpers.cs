namespace OrleansDif.Grains;

internal static class GrainHelpers
{
    public static CheckKind From(Protection.PiCheck check) => check switch
    {
        Protection.PiCheck.Guard => CheckKind.Guard,
        Protection.PiCheck.AppTag => CheckKind.App,
        _ => CheckKind.Ref,
    };

    public static ProtectionFailure ToFailure(Protection.PiError e) => new(e.Lba, From(e.Check), e.Expected, e.Actual);

    public static string Tag(CheckKind check) => check switch
    {
        CheckKind.Guard => "guard",
        CheckKind.App => "app",
        CheckKind.Version => "version",
        _ => "ref",
    };

    public static Protection.ProtectionScheme Scheme(VolumeConfig config, bool verify = true) =>
        new(new Protection.SectorFormat(config.SectorSize), (Protection.PiType)config.PiType)
        {
            AppTag = config.AppTag,
            // With version tags the application tag differs page by page: the disks cannot check it (mask 0);
            // the page grains check it against each page's last durable version when they read.
            AppMask = config.VersionTags ? (ushort)0 : (ushort)0xFFFF,
            Checks = verify ? Protection.PiCheckFlags.All : Protection.PiCheckFlags.None,
        };

    public static IPageGrain Page(this IGrainFactory factory, string volume, int page) =>
        factory.GetGrain<IPageGrain>($"{volume}/{page}");

    public static IDiskGrain Disk(this IGrainFactory factory, string volume, int disk) =>
        factory.GetGrain<IDiskGrain>($"{volume}/{disk}");

    /// <summary>Splits a "volume/number" key.</summary>
    public static (string Volume, int Number) ParseKey(string key)
    {
        int slash = key.LastIndexOf('/');
        if (slash <= 0 || !int.TryParse(key.AsSpan(slash + 1), out int n))
        {
            throw new StorageException(StorageError.OutOfRange, $"grain key '{key}' is not 'volume/number'");
        }
        return (key[..slash], n);
    }
}

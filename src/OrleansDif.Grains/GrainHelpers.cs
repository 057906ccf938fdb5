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

    /// <summary>The check a <see cref="Tag"/> names, or null.</summary>
    public static CheckKind? ParseTag(string tag) =>
        Enum.GetValues<CheckKind>().Cast<CheckKind?>().FirstOrDefault(k => Tag(k!.Value) == tag);

    /// <summary>The sector format of a volume: its sector size, and 8-byte tuples or the 64-bit guard's 16-byte ones.</summary>
    public static Protection.SectorFormat Format(VolumeConfig config) =>
        Protection.SectorFormat.Of(config.SectorSize, config.Guard == GuardKind.Crc64);

    public static Protection.ProtectionScheme Scheme(VolumeConfig config, bool verify = true) =>
        new(Format(config), (Protection.PiType)config.PiType)
        {
            AppTag = config.AppTag,
            // With version tags the application tag differs page by page: the disks cannot check it (mask 0);
            // the page grains check it against each page's last durable version when they read.
            AppMask = config.VersionTags ? (ushort)0 : (ushort)0xFFFF,
            Checks = verify ? Protection.PiCheckFlags.All : Protection.PiCheckFlags.None,
        };

    /// <summary>Splits a "volume/number" key (see <see cref="GrainKeys"/>).</summary>
    public static (string Volume, int Number) ParseKey(string key) => GrainKeys.Parse(key);
}

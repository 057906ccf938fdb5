namespace OrleansDif.Grains;

internal static class GrainHelpers
{
    public static CheckKind From(Protection.PiCheck check) => check switch
    {
        Protection.PiCheck.Guard => CheckKind.Guard,
        Protection.PiCheck.AppTag => CheckKind.App,
        _ => CheckKind.Ref,
    };

    public static ProtectionFailure ToFailure(Protection.PiError e) => new(e.Lba, From(e.Check), (uint)e.Expected, (uint)e.Actual); // the grains' T10 DIF fields fit in 32 bits

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

    /// <summary>Splits a "volume/number" key (see <see cref="GrainKeys"/>).</summary>
    public static (string Volume, int Number) ParseKey(string key) => GrainKeys.Parse(key);
}

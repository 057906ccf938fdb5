namespace OrleansDif.Protection;

/// <summary>What an offline scrub of a disk image found.</summary>
public sealed record ScrubReport(string Image, long Sectors, IReadOnlyList<PiError> Errors)
{
    public bool Clean => Errors.Count == 0;
}

/// <summary>Streams a disk image and verifies every sector's PI tuple. Works on images larger than memory.</summary>
public static class Scrubber
{
    /// <summary>
    /// Scrubs <paramref name="path"/>. Geometry from the sidecar when present, else <paramref name="format"/>,
    /// <paramref name="type"/> and <paramref name="crc64"/>, else 512 + Type 1 + the 16-bit guard. The expected reference
    /// tag is the low 32 bits of the LBA (Types 1 and 2; the low 48 bits with the 64-bit guard); the application tag
    /// is checked only when <paramref name="appTag"/> is given.
    /// </summary>
    public static ScrubReport Scrub(string path, SectorFormat? format = null, PiType? type = null,
        ushort? appTag = null, ushort appMask = 0xFFFF, bool? crc64 = null)
    {
        // Without a sidecar the caller names the format; DiskImage.Open reads the sidecar's guard when there is one.
        SectorFormat? asked = crc64 == true ? SectorFormat.Of((format ?? SectorFormat.Sector512).DataSize, guard64: true) : format;
        using DiskImage image = DiskImage.Open(path, writable: false, asked, type);
        var scheme = new ProtectionScheme(image.Format, image.PiType)
        {
            Checks = appTag is null ? PiCheckFlags.Guard | PiCheckFlags.RefTag : PiCheckFlags.All,
            AppTag = appTag ?? 0,
            AppMask = appMask,
        };
        var errors = new List<PiError>();
        int block = image.Format.BlockSize;
        int perChunk = Math.Max(1, (4 << 20) / block);
        byte[] buffer = new byte[perChunk * block];
        for (long lba = 0; lba < image.SectorCount; lba += perChunk)
        {
            int n = (int)Math.Min(perChunk, image.SectorCount - lba);
            Span<byte> chunk = buffer.AsSpan(0, n * block);
            image.ReadRaw(lba, chunk);
            scheme.VerifyInterleaved(chunk, lba, errors);
        }
        return new ScrubReport(path, image.SectorCount, errors);
    }
}

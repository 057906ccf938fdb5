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
    /// Scrubs <paramref name="path"/>. Geometry from the sidecar when present, else <paramref name="format"/> and
    /// <paramref name="type"/>, else 512 + Type 1. The expected reference tag is the low 32 bits of the LBA
    /// (Types 1 and 2); the application tag is checked only when <paramref name="appTag"/> is given.
    /// </summary>
    public static ScrubReport Scrub(string path, SectorFormat? format = null, PiType? type = null,
        ushort? appTag = null, ushort appMask = 0xFFFF, bool? crc64 = null)
    {
        DiskImageInfo? info = File.Exists(path) ? DiskImageInfo.TryLoad(path) : null;
        if (info?.Guard is not null and not ("crc16" or "crc64"))
        {
            throw new DifArgumentException(DifError.BadImage, $"sidecar of {path}: guard '{info.Guard}' is not crc16 or crc64");
        }
        if (info is null ? crc64 == true : info.Guard == "crc64")
        {
            return Scrub64(path, info, format, type, appTag, appMask);
        }
        using DiskImage image = DiskImage.Open(path, writable: false, format, type);
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

    /// <summary>
    /// An image of the NVMe 64b Guard format: LBA n at <c>[n*(S+16), (n+1)*(S+16))</c>, S data bytes then the 16-byte
    /// tuple, no header. The expected reference tag is the low 48 bits of the LBA (Types 1 and 2).
    /// </summary>
    private static ScrubReport Scrub64(string path, DiskImageInfo? info, SectorFormat? format, PiType? type, ushort? appTag, ushort appMask)
    {
        if (!File.Exists(path))
        {
            throw new DifArgumentException(DifError.BadImage, $"image {path} does not exist");
        }
        var scheme = new Pi64Scheme(info is null ? format ?? SectorFormat.Sector512 : new SectorFormat(info.SectorSize),
            info is null ? type ?? PiType.Type1 : (PiType)info.PiType) { AppTag = appTag, AppMask = appMask };
        if (scheme.Type is not (PiType.Type1 or PiType.Type2 or PiType.Type3))
        {
            throw new DifArgumentException(DifError.BadGeometry, $"protection type {(int)scheme.Type} is not 1, 2 or 3");
        }
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        long length = RandomAccess.GetLength(handle);
        int block = scheme.BlockSize;
        if (length % block != 0)
        {
            throw new DifArgumentException(DifError.TruncatedImage, $"image {path} is {length} bytes, not a whole number of {block}-byte sectors");
        }
        long sectors = length / block;
        if (info is not null && info.Sectors != sectors)
        {
            throw new DifArgumentException(DifError.TruncatedImage, $"image {path} holds {sectors} sectors but its sidecar says {info.Sectors}");
        }
        var errors = new List<PiError>();
        int perChunk = Math.Max(1, (4 << 20) / block);
        byte[] buffer = new byte[perChunk * block];
        for (long lba = 0; lba < sectors; lba += perChunk)
        {
            int n = (int)Math.Min(perChunk, sectors - lba);
            Span<byte> chunk = buffer.AsSpan(0, n * block);
            for (int read = 0; read < chunk.Length;)
            {
                int got = RandomAccess.Read(handle, chunk[read..], lba * block + read);
                if (got == 0)
                {
                    throw new DifArgumentException(DifError.TruncatedImage, $"image {path} ended early at byte {lba * block + read}");
                }
                read += got;
            }
            scheme.VerifyInterleaved(chunk, lba, errors);
        }
        return new ScrubReport(path, sectors, errors);
    }
}

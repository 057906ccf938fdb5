using System.Buffers;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Win32.SafeHandles;

namespace OrleansDif.Protection;

/// <summary>Geometry and identity of a disk image, kept in a JSON sidecar <c>&lt;image&gt;.json</c>.</summary>
public sealed record DiskImageInfo
{
    [JsonPropertyName("sectorSize")]
    public int SectorSize { get; init; } = 512;

    [JsonPropertyName("piType")]
    public int PiType { get; init; } = 1;

    [JsonPropertyName("sectors")]
    public long Sectors { get; init; }

    [JsonPropertyName("id")]
    public string? Id { get; init; }

    /// <summary>"crc16" (T10 DIF, 8-byte tuples; the default) or "crc64" (NVMe 64b Guard, 16-byte tuples).</summary>
    [JsonPropertyName("guard")]
    public string Guard { get; init; } = "crc16";

    public static string SidecarPath(string imagePath) => imagePath + ".json";

    /// <summary>Reads the sidecar of <paramref name="imagePath"/>, or null when there is none.</summary>
    public static DiskImageInfo? TryLoad(string imagePath)
    {
        string path = SidecarPath(imagePath);
        if (!File.Exists(path))
        {
            return null;
        }
        try
        {
            return JsonSerializer.Deserialize<DiskImageInfo>(File.ReadAllText(path))
                ?? throw new DifArgumentException(DifError.BadImage, $"sidecar {path} is empty");
        }
        catch (JsonException e)
        {
            throw new DifArgumentException(DifError.BadImage, $"sidecar {path} is not valid JSON: {e.Message}");
        }
    }

    public void Save(string imagePath)
    {
        string path = SidecarPath(imagePath);
        string tmp = path + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(this, new JsonSerializerOptions { WriteIndented = true }));
        File.Move(tmp, path, overwrite: true);
    }
}

/// <summary>
/// A DIF-formatted disk image: raw, no header, LBA n at byte n * (sector size + tuple size), data then the PI
/// tuple (8 bytes; 16 for the NVMe 64b Guard format, as the sidecar's guard says). All I/O is positional; the image
/// is never loaded whole.
/// </summary>
public sealed class DiskImage : IDisposable
{
    private readonly SafeFileHandle _handle;
    private readonly SafeFileHandle? _writerLock;

    private DiskImage(string path, SafeFileHandle handle, SafeFileHandle? writerLock, SectorFormat format, PiType type,
        long sectors, bool writable)
    {
        Path = path;
        _handle = handle;
        _writerLock = writerLock;
        Format = format;
        PiType = type;
        SectorCount = sectors;
        Writable = writable;
    }

    public string Path { get; }

    public SectorFormat Format { get; }

    public PiType PiType { get; }

    public long SectorCount { get; }

    public bool Writable { get; }

    /// <summary>
    /// Creates (formats) an image: every sector zero-filled with the never-written tuple (all 0xFF), and its
    /// sidecar. Fails when the image exists. The file is locked against other writers while open.
    /// </summary>
    public static DiskImage Create(string path, SectorFormat format, PiType type, long sectors, string? id = null)
    {
        ValidateGeometry(format, type, sectors);
        SafeFileHandle writerLock = AcquireWriterLock(path);
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.ReadWrite);
        }
        catch
        {
            writerLock.Dispose();
            throw;
        }
        try
        {
            int block = format.BlockSize;
            int perChunk = Math.Max(1, (1 << 20) / block);
            byte[] chunk = new byte[perChunk * block];
            for (int i = 0; i < perChunk; i++)
            {
                chunk.AsSpan(i * block + format.DataSize, format.TupleSize).Fill(0xFF); // "never written": escapes every check
            }
            for (long lba = 0; lba < sectors; lba += perChunk)
            {
                int n = (int)Math.Min(perChunk, sectors - lba);
                RandomAccess.Write(handle, chunk.AsSpan(0, n * block), lba * block);
            }
            RandomAccess.FlushToDisk(handle);
            new DiskImageInfo { SectorSize = format.DataSize, PiType = (int)type, Sectors = sectors, Id = id, Guard = format.Guard64 ? "crc64" : "crc16" }.Save(path);
        }
        catch
        {
            handle.Dispose();
            writerLock.Dispose();
            File.Delete(path);
            throw;
        }
        return new DiskImage(path, handle, writerLock, format, type, sectors, writable: true);
    }

    /// <summary>
    /// Opens an image. Geometry comes from the sidecar when present, else from the arguments, else 512 + Type 1.
    /// A writable open is exclusive against other writers.
    /// </summary>
    public static DiskImage Open(string path, bool writable, SectorFormat? format = null, PiType? type = null)
    {
        if (!File.Exists(path))
        {
            throw new DifArgumentException(DifError.BadImage, $"image {path} does not exist");
        }
        DiskImageInfo? info = DiskImageInfo.TryLoad(path);
        if (info?.Guard is not null and not ("crc16" or "crc64"))
        {
            throw new DifArgumentException(DifError.BadImage, $"sidecar of {path}: guard '{info.Guard}' is not crc16 or crc64");
        }
        SectorFormat fmt = info is null ? format ?? SectorFormat.Sector512 : SectorFormat.Of(info.SectorSize, info.Guard == "crc64");
        PiType piType = info is null ? type ?? PiType.Type1 : (PiType)info.PiType;
        SafeFileHandle? writerLock = writable ? AcquireWriterLock(path) : null;
        SafeFileHandle? handle = null;
        try
        {
            handle = File.OpenHandle(path, FileMode.Open, writable ? FileAccess.ReadWrite : FileAccess.Read, FileShare.ReadWrite);
            long length = RandomAccess.GetLength(handle);
            if (length % fmt.BlockSize != 0)
            {
                throw new DifArgumentException(DifError.TruncatedImage,
                    $"image {path} is {length} bytes, not a whole number of {fmt.BlockSize}-byte sectors");
            }
            long sectors = length / fmt.BlockSize;
            if (info is not null && info.Sectors != sectors)
            {
                throw new DifArgumentException(DifError.TruncatedImage,
                    $"image {path} holds {sectors} sectors but its sidecar says {info.Sectors}");
            }
            ValidateGeometry(fmt, piType, Math.Max(sectors, 1));
            return new DiskImage(path, handle, writerLock, fmt, piType, sectors, writable);
        }
        catch
        {
            handle?.Dispose();
            writerLock?.Dispose();
            throw;
        }
    }

    /// <summary>Reads <c>data.Length / sector size</c> sectors from <paramref name="lba"/> into separate data and PI buffers.</summary>
    public void Read(long lba, Span<byte> data, Span<byte> pi)
    {
        int count = CheckCommand(lba, data.Length, pi.Length);
        int block = Format.BlockSize;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(count * block);
        try
        {
            Span<byte> raw = buffer.AsSpan(0, count * block);
            ReadRaw(lba, raw);
            Format.Split(count, raw, data, pi);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Writes sectors from separate data and PI buffers, interleaving them as on the medium.</summary>
    public void Write(long lba, ReadOnlySpan<byte> data, ReadOnlySpan<byte> pi)
    {
        int count = CheckCommand(lba, data.Length, pi.Length);
        int block = Format.BlockSize;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(count * block);
        try
        {
            Span<byte> raw = buffer.AsSpan(0, count * block);
            Format.Interleave(count, data, pi, raw);
            WriteRaw(lba, raw);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Reads whole blocks (data + tuple each) starting at <paramref name="lba"/>.</summary>
    public void ReadRaw(long lba, Span<byte> blocks)
    {
        CheckRaw(lba, blocks.Length);
        long offset = lba * Format.BlockSize;
        while (!blocks.IsEmpty)
        {
            int n = RandomAccess.Read(_handle, blocks, offset);
            if (n == 0)
            {
                throw new DifArgumentException(DifError.TruncatedImage, $"image {Path} ended at byte {offset}");
            }
            blocks = blocks[n..];
            offset += n;
        }
    }

    /// <summary>Writes whole blocks (data + tuple each) starting at <paramref name="lba"/>. Does not verify them.</summary>
    public void WriteRaw(long lba, ReadOnlySpan<byte> blocks)
    {
        if (!Writable)
        {
            throw new InvalidOperationException($"image {Path} is open read-only");
        }
        CheckRaw(lba, blocks.Length);
        RandomAccess.Write(_handle, blocks, lba * Format.BlockSize);
    }

    /// <summary>Makes every acknowledged write durable.</summary>
    public void Flush() => RandomAccess.FlushToDisk(_handle);

    public void Dispose()
    {
        _handle.Dispose();
        _writerLock?.Dispose();
    }

    /// <summary>
    /// One writer per image: an exclusive lock on <c>&lt;image&gt;.lock</c>, held while the image is open for
    /// writing (advisory file lock: another process or activation trying to write gets an <see cref="IOException"/>).
    /// Readers such as scrub do not take it.
    /// </summary>
    private static SafeFileHandle AcquireWriterLock(string path)
    {
        try
        {
            return File.OpenHandle(path + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            throw new IOException($"image {path} is already open for writing elsewhere", e);
        }
    }

    private int CheckCommand(long lba, int dataLength, int piLength)
    {
        int count = Format.SectorsIn(dataLength);
        if (piLength != count * Format.TupleSize)
        {
            throw new DifArgumentException(DifError.PiCountMismatch,
                $"{count} sectors need {count * Format.TupleSize} PI bytes, got {piLength}");
        }
        CheckRange(lba, count);
        return count;
    }

    private void CheckRaw(long lba, int length)
    {
        if (length <= 0 || length % Format.BlockSize != 0)
        {
            throw new DifArgumentException(length == 0 ? DifError.EmptyBuffer : DifError.NotWholeSectors,
                $"{length} bytes is not a whole, non-zero number of {Format.BlockSize}-byte blocks");
        }
        CheckRange(lba, length / Format.BlockSize);
    }

    private void CheckRange(long lba, int count)
    {
        if (lba < 0 || lba > SectorCount - count)
        {
            throw new DifArgumentException(DifError.OutOfRange,
                $"LBA {lba} + {count} sectors is outside the disk of {SectorCount} sectors");
        }
    }

    private static void ValidateGeometry(SectorFormat format, PiType type, long sectors)
    {
        if (format.DataSize == 0)
        {
            throw new DifArgumentException(DifError.BadGeometry, "sector format is not set");
        }
        if (!Enum.IsDefined(type))
        {
            throw new DifArgumentException(DifError.BadGeometry, $"PI type {(int)type} is not 1, 2 or 3");
        }
        if (sectors <= 0)
        {
            throw new DifArgumentException(DifError.BadGeometry, $"sector count {sectors} is not positive");
        }
    }
}

using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;

namespace OrleansDif.Grains;

/// <summary>
/// The file both per-page tables keep (the acknowledgement table, the dirty log): a 64-byte header that begins with a
/// magic, a random table id and the page count, then one 8-byte slot per page. A plain class with no Orleans types.
/// </summary>
internal static class SlotTableFile
{
    public const int HeaderSize = 64;

    /// <summary>Where page <paramref name="page"/>'s slot is in a table of <paramref name="pages"/> (<paramref name="table"/> names it in the error).</summary>
    public static long SlotOffset(int page, int pages, string table)
    {
        if ((uint)page >= (uint)pages)
        {
            throw new StorageException(StorageError.OutOfRange, $"page {page} is outside the {table} of {pages} pages");
        }
        return HeaderSize + page * 8L;
    }

    /// <summary>Whether the rest of an existing table's header (after magic, id and pages) is one to keep.</summary>
    public delegate bool HeaderCheck(ReadOnlySpan<byte> header);

    /// <summary>Writes the rest of a new table's header.</summary>
    public delegate void HeaderFill(Span<byte> header);

    /// <summary>
    /// The id of the table at <paramref name="path"/> when it has <paramref name="magic"/>, <paramref name="pages"/>
    /// slots and a header <paramref name="keep"/> accepts; else makes it anew (a new id, every slot 0), written to a
    /// temporary file and renamed over the old one, flushed with its folder first when <paramref name="durable"/>.
    /// The caller holds the table's lock (<see cref="AckTable.LockFile"/>).
    /// </summary>
    public static long OpenOrMake(string path, long magic, int pages, bool durable, HeaderCheck keep, HeaderFill fill)
    {
        long size = HeaderSize + pages * 8L;
        Span<byte> header = stackalloc byte[HeaderSize];
        if (File.Exists(path) && new FileInfo(path).Length == size)
        {
            using SafeFileHandle existing = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            if (RandomAccess.Read(existing, header, 0) == HeaderSize
                && BinaryPrimitives.ReadInt64LittleEndian(header) == magic
                && BinaryPrimitives.ReadInt64LittleEndian(header[16..]) == pages
                && BinaryPrimitives.ReadInt64LittleEndian(header[8..]) is long found and not 0
                && keep(header))
            {
                return found;
            }
        }
        long id = Random.Shared.NextInt64(1, long.MaxValue);
        string temp = path + ".new";
        using (SafeFileHandle made = File.OpenHandle(temp, FileMode.Create, FileAccess.ReadWrite, FileShare.None))
        {
            header.Clear();
            BinaryPrimitives.WriteInt64LittleEndian(header, magic);
            BinaryPrimitives.WriteInt64LittleEndian(header[8..], id);
            BinaryPrimitives.WriteInt64LittleEndian(header[16..], pages);
            fill(header);
            RandomAccess.SetLength(made, size);
            RandomAccess.Write(made, header, 0);
            if (durable)
            {
                RandomAccess.FlushToDisk(made);
            }
        }
        File.Move(temp, path, overwrite: true); // a mapping of the old table keeps the old file: its writes go nowhere
        if (durable)
        {
            DirectorySync.Flush(Path.GetDirectoryName(Path.GetFullPath(path))!);
        }
        return id;
    }
}

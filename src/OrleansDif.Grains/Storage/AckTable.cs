using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;

namespace OrleansDif.Grains;

/// <summary>
/// The last version each page activation acknowledged, in a file every silo of the machine maps shared: a store into
/// the page cache per acknowledged write (no system call, no flush), which outlives the process that made it. When a
/// silo dies, the page's next activation reads what the dead one acknowledged and the flusher judges its loss exactly
/// against what the disk holds, where without it nobody can vouch for the dead activation and the loss is reported
/// whether or not it happened.
/// <para>
/// What it does not outlive is the machine: the page cache goes with a power loss or a reboot. The header names the
/// boot it was made in (<c>/proc/sys/kernel/random/boot_id</c>) and a random table id; a table opened in another boot
/// is made again with a new id, and a page's write intent names the table id its activation recorded into, so a
/// judgment only trusts a table that has lived since that activation wrote its intent. Every other case is
/// conservative (the loss is reported), as before.
/// </para>
/// </summary>
/// <remarks>
/// Each entry is written only by the activation whose epoch it carries (a page has one activation per epoch, and an
/// activation's turns are one at a time), with aligned 8-byte stores: an entry carrying epoch E holds the last version
/// activation E recorded. A plain class with no Orleans types.
/// </remarks>
public sealed class AckTable : IDisposable
{
    private const long Magic = 0x31534B4341464944;  // "DIFACKS1"
    private const int HeaderSize = SlotTableFile.HeaderSize; // magic, table id, pages, boot id (16 bytes)

    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;

    private AckTable(MemoryMappedFile file, MemoryMappedViewAccessor view, long id, int pages)
    {
        _file = file;
        _view = view;
        Id = id;
        Pages = pages;
    }

    /// <summary>Random per table made: a write intent that names it can trust what the table says of its activation.</summary>
    public long Id { get; }

    public int Pages { get; }

    /// <summary>
    /// Opens the table at <paramref name="path"/>, or makes it (new id, every entry empty) when it is missing, of
    /// another size, of another boot, or unreadable. <paramref name="bootId"/>: this boot; null when unknown (then
    /// no table is opened: judgments stay conservative).
    /// </summary>
    public static AckTable? Open(string path, int pages, Guid? bootId)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(pages, 1);
        if (bootId is not Guid boot)
        {
            return null;
        }
        long size = HeaderSize + pages * 8L;
        // One process at a time checks and, if need be, makes the table (silos start together). It lives in the page
        // cache only, so nothing of it is flushed.
        using FileStream gate = LockFile(path + ".lock");
        long id = SlotTableFile.OpenOrMake(path, Magic, pages, durable: false,
            header => new Guid(header.Slice(24, 16)) == boot,
            header => boot.TryWriteBytes(header.Slice(24, 16)));
        MemoryMappedFile file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, size, MemoryMappedFileAccess.ReadWrite);
        try
        {
            return new AckTable(file, file.CreateViewAccessor(0, size, MemoryMappedFileAccess.ReadWrite), id, pages);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>This machine's boot, or null where the system does not say.</summary>
    public static Guid? CurrentBoot()
    {
        try
        {
            return Guid.TryParse(File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim(), out Guid boot) ? boot : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Page <paramref name="page"/>'s activation acknowledged <paramref name="version"/> (an epoch:count).</summary>
    public void Record(int page, long version)
    {
        long at = Offset(page);
        long now = _view.ReadInt64(at);
        if (PageVersion.EpochOf(now) != PageVersion.EpochOf(version) || now < version)
        {
            _view.Write(at, version);
        }
    }

    /// <summary>The last version recorded for <paramref name="page"/> (0: none since the table was made).</summary>
    public long Read(int page) => _view.ReadInt64(Offset(page));

    /// <summary>
    /// What activation <paramref name="epoch"/> of <paramref name="page"/> acknowledged last, read from this table:
    /// its last version; 0 when it acknowledged nothing (the entry is of an earlier activation); -1 when the table
    /// cannot say (a later activation recorded over it).
    /// </summary>
    public long LastAcknowledged(int page, long epoch) => LastAcknowledged(Read(page), epoch);

    /// <summary>The same, from an <paramref name="entry"/> read from a table earlier.</summary>
    public static long LastAcknowledged(long entry, long epoch)
    {
        long of = PageVersion.EpochOf(entry);
        return entry == 0 || of < epoch ? 0 : of == epoch ? entry : -1;
    }

    private long Offset(int page) => SlotTableFile.SlotOffset(page, Pages, "acknowledgement table");

    /// <summary>An exclusive lock file: one process at a time opens or makes a table.</summary>
    internal static FileStream LockFile(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (attempt < 200)
            {
                Thread.Sleep(10); // another silo is opening the same table
            }
        }
    }

    public void Dispose()
    {
        _view.Dispose();
        _file.Dispose();
    }
}

/// <summary>The acknowledgement tables of this silo, one per volume, opened once.</summary>
public sealed class AckTables(Microsoft.Extensions.Options.IOptions<StorageOptions> options) : IDisposable
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Lazy<AckTable?>> _tables = new();
    private readonly Guid? _boot = AckTable.CurrentBoot();

    /// <summary>The table of <paramref name="volume"/>; null where this machine's boot is unknown (judgments stay conservative).</summary>
    public AckTable? For(string volume, int pages)
    {
        Lazy<AckTable?> table = _tables.GetOrAdd(volume, v => new Lazy<AckTable?>(() =>
            AckTable.Open(AckTableLayout.TablePath(options.Value.DataDirectory, v), pages, _boot)));
        try
        {
            return table.Value;
        }
        catch
        {
            _tables.TryRemove(new KeyValuePair<string, Lazy<AckTable?>>(volume, table)); // the next caller tries again
            throw;
        }
    }

    public void Dispose()
    {
        foreach (Lazy<AckTable?> table in _tables.Values)
        {
            if (table.IsValueCreated)
            {
                table.Value?.Dispose();
            }
        }
    }
}

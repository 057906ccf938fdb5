using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;

namespace OrleansDif.Grains;

/// <summary>
/// The durable dirty log of a volume (as md's write-intent bitmap is to a mirror): for each page, the first version
/// of the dirty period its activation is in, on stable storage before any write of that period is acknowledged. A
/// period opens with the first write after the page was loaded or after a writeback of it began; so when a power
/// loss takes the page cache and the acknowledgement table with it, the page's next activation still knows exactly
/// whether the dead one's acknowledged writes reached the medium: the disk holds a version at least the period's
/// first one only if a writeback that began after every acknowledged write landed (see <see cref="PageMachine.PeriodStart"/>).
/// <para>
/// Group commit: records are gathered in memory and written to the file together, then one flush makes them all
/// durable and every writer waiting on one of them goes on. A record is one 8-byte slot per page (an epoch:count
/// version), written in place. A process that dies loses what it had not written, as a power loss does.
/// </para>
/// </summary>
/// <remarks>
/// Every silo of the machine opens the same file; a page has one activation at a time, so each slot has one writer.
/// The header names a random log id, and a page's write intent names the id its activation records into: a
/// judgment trusts only the log that activation recorded into (a log made again is a different one).
/// A plain class with no Orleans types.
/// </remarks>
public sealed class DirtyLog : IDisposable
{
    private const long Magic = 0x3159545249444644;  // "DFDIRTY1"

    private readonly SafeFileHandle _file;
    private readonly object _gate = new();
    private Dictionary<int, long> _pending = [];     // not yet written to the file
    private Dictionary<int, long> _writing = [];     // being written and flushed
    private TaskCompletionSource _durable = NewBatch();
    private Thread? _flusher;                        // writes and flushes the batches (started at the first record)
    private bool _disposed;
    private long _flushes;
    private long _records;

    private DirtyLog(SafeFileHandle file, long id, int pages)
    {
        _file = file;
        Id = id;
        Pages = pages;
    }

    /// <summary>Random per log made: a write intent that names it can trust what the log says of its activation.</summary>
    public long Id { get; }

    public int Pages { get; }

    /// <summary>Flushes of the file so far (each makes a batch of records durable).</summary>
    public long Flushes => Interlocked.Read(ref _flushes);

    /// <summary>Records made durable so far.</summary>
    public long Records => Interlocked.Read(ref _records);

    /// <summary>
    /// Opens the log at <paramref name="path"/>, or makes it (a new id, every slot empty, flushed before use) when it
    /// is missing, of another size, or unreadable.
    /// </summary>
    public static DirtyLog Open(string path, int pages)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(pages, 1);
        using FileStream gate = AckTable.LockFile(path + ".lock"); // silos start together: one makes it
        long id = SlotTableFile.OpenOrMake(path, Magic, pages, durable: true, _ => true, _ => { });
        return new DirtyLog(File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite), id, pages);
    }

    /// <summary>
    /// Page <paramref name="page"/>'s activation opened a dirty period at <paramref name="version"/>: done when the
    /// record is durable (with every other record of its batch). Faults when the write or the flush failed; the
    /// caller must not acknowledge a write of that period until a record of it is durable.
    /// </summary>
    public Task Record(int page, long version)
    {
        _ = Offset(page); // a page outside the log: a typed error, nothing recorded or read
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _pending[page] = version;
            if (_flusher is null)
            {
                // A thread of its own: a batch's flush blocks it, and the thread pool's queue never delays it.
                _flusher = new Thread(FlushBatches) { IsBackground = true, Name = "dirty log" };
                _flusher.Start();
            }
            Monitor.Pulse(_gate);
            return _durable.Task;
        }
    }

    /// <summary>
    /// The slot of <paramref name="page"/>: the last period recorded for it (0: none since the log was made), including
    /// a record of this process not yet durable (a new activation here must see what an earlier one here asked for).
    /// </summary>
    public long Read(int page)
    {
        _ = Offset(page); // a page outside the log: a typed error, nothing recorded or read
        lock (_gate)
        {
            if (_pending.TryGetValue(page, out long pending) || _writing.TryGetValue(page, out pending))
            {
                return pending;
            }
        }
        Span<byte> slot = stackalloc byte[8];
        return RandomAccess.Read(_file, slot, Offset(page)) == 8 ? BinaryPrimitives.ReadInt64LittleEndian(slot) : 0;
    }

    /// <summary>
    /// The first version of activation <paramref name="epoch"/>'s last dirty period, from a slot read earlier
    /// (<paramref name="entry"/>): its version; 0 when that activation acknowledged nothing (the slot is of an earlier
    /// activation); -1 when the log cannot say (a later activation recorded over it).
    /// </summary>
    public static long PeriodStart(long entry, long epoch) => AckTable.LastAcknowledged(entry, epoch);

    private void FlushBatches()
    {
        Span<byte> slot = stackalloc byte[8];
        while (true)
        {
            TaskCompletionSource done;
            lock (_gate)
            {
                _writing.Clear();
                while (_pending.Count == 0 && !_disposed)
                {
                    Monitor.Wait(_gate);
                }
                if (_pending.Count == 0)
                {
                    return; // disposed, nothing left to make durable
                }
                (_writing, _pending) = (_pending, _writing);
                done = _durable;
                _durable = NewBatch();
            }
            try
            {
                foreach ((int page, long version) in _writing)
                {
                    BinaryPrimitives.WriteInt64LittleEndian(slot, version);
                    RandomAccess.Write(_file, slot, Offset(page));
                }
                if (FileSync.DataSync(_file) != 0)
                {
                    throw new IOException($"fdatasync failed: errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}");
                }
                Interlocked.Increment(ref _flushes);
                Interlocked.Add(ref _records, _writing.Count);
                done.SetResult();
            }
            catch (Exception e)
            {
                done.SetException(new IOException($"the dirty log could not be made durable: {e.Message}", e));
            }
        }
    }

    private long Offset(int page) => SlotTableFile.SlotOffset(page, Pages, "dirty log");

    private static TaskCompletionSource NewBatch() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            Monitor.Pulse(_gate);
        }
        _flusher?.Join(); // what was recorded is made durable first
        _file.Dispose();
    }
}

/// <summary>fdatasync(2): the data and what reading it back needs, not the file's times (the log is written in place).</summary>
internal static partial class FileSync
{
    public static int DataSync(SafeFileHandle file)
    {
        bool added = false;
        try
        {
            file.DangerousAddRef(ref added);
            return FDataSync((int)file.DangerousGetHandle());
        }
        finally
        {
            if (added)
            {
                file.DangerousRelease();
            }
        }
    }

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "fdatasync", SetLastError = true)]
    private static partial int FDataSync(int fd);
}

/// <summary>The dirty logs of this silo, one per volume, opened once.</summary>
public sealed class DirtyLogs(Microsoft.Extensions.Options.IOptions<StorageOptions> options) : IDisposable
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Lazy<DirtyLog>> _logs = new();

    /// <summary>Where the log of <paramref name="volume"/> lives: on the data directory's stable storage, kept across power losses.</summary>
    public static string PathOf(string dataDirectory, string volume) => Path.Combine(dataDirectory, "dirty", volume + ".log");

    /// <summary>The log of <paramref name="volume"/>; an open that failed is tried again by the next caller.</summary>
    public DirtyLog For(string volume, int pages)
    {
        Lazy<DirtyLog> log = _logs.GetOrAdd(volume, v => new Lazy<DirtyLog>(() => DirtyLog.Open(PathOf(options.Value.DataDirectory, v), pages)));
        try
        {
            return log.Value;
        }
        catch
        {
            _logs.TryRemove(new KeyValuePair<string, Lazy<DirtyLog>>(volume, log));
            throw;
        }
    }

    public void Dispose()
    {
        foreach (Lazy<DirtyLog> log in _logs.Values)
        {
            if (log.IsValueCreated)
            {
                log.Value.Dispose();
            }
        }
    }
}

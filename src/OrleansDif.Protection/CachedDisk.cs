using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;

namespace OrleansDif.Protection;

/// <summary>What a page-versioned write did.</summary>
public enum FencedWrite
{
    /// <summary>In the write cache; durable after the next <see cref="CachedDisk.FlushAsync"/>.</summary>
    Accepted,
    /// <summary>Refused whole: a page of the command is older than what the disk holds or was claimed for.</summary>
    Stale,
}

/// <summary>
/// A disk with a volatile write cache, as a real one has. Writes land in memory (whole page slots, each its own
/// array, never changed once cached: a flush may be reading it); <see cref="FlushAsync"/> writes the cached slots to
/// the image and fdatasyncs it (the FLUSH CACHE command), off the caller's thread, and concurrent flushes coalesce
/// into one (group commit). A process that dies loses exactly the writes not yet flushed.
/// <para>
/// Fencing: for every page slot the disk keeps the version of the page it holds and a floor (the lowest version it
/// will still accept, raised when a new page activation claims the slot). A versioned command carrying a version
/// below either for any of its pages is refused whole (<see cref="FencedWrite.Stale"/>), so a writeback whose
/// lease expired can never land over newer data. Versions and floors are kept in a fence file beside the image,
/// written and fdatasynced in the same flush as the data. The fence file also reserves page epochs, so that the
/// epochs the disk hands out never repeat across its activations.
/// </para>
/// Safe to call from any thread: its state is guarded by one lock, never held across the flush's data I/O (only
/// across the few bytes of a completion mark or an epoch reservation; a grain calls it from one logical thread; a
/// flush's continuation may resume elsewhere).
/// </summary>
public sealed class CachedDisk : IDisposable
{
    private const long Magic = 0x34434E4546464944; // "DIFFENC4": layout 4 (header: magic, epochs, flush sequence, completed sequence; slot: held, floor, previous, flush sequence, data hash)
    private const int HeaderSize = 32;

    /// <summary>Where the fence file's header keeps the last flush marked complete (a crash test may set it back).</summary>
    public const int CompletedSequenceOffset = 24;
    private const int SlotSize = 40;
    private const long EpochBlock = 4096;

    private readonly DiskImage _image;
    private readonly int _slotSectors;
    private readonly int _slotBytes;
    private readonly Dictionary<long, byte[]> _cache = [];
    private readonly long[] _held;
    private readonly long[] _floor;
    private readonly long[] _flushedHeld;                   // what the medium holds as of the last flush
    private long _flushSequence;
    private long _completedSequence;                        // the last flush whose data is known to have reached the medium
    private readonly HashSet<long> _fenceDirty = [];
    private readonly SafeFileHandle _fence;
    private long _epochReserved;
    private long _nextEpoch;
    private long _writeGeneration;
    private long _flushedGeneration;
    private Task? _flushing;
    private readonly object _gate = new();

    /// <summary>Opens the cache over <paramref name="image"/> with slots of <paramref name="slotSectors"/> sectors (one page).</summary>
    public CachedDisk(DiskImage image, int slotSectors)
    {
        if (slotSectors <= 0 || image.SectorCount % slotSectors != 0)
        {
            throw new DifArgumentException(DifError.BadGeometry, $"{image.SectorCount} sectors do not make whole slots of {slotSectors}");
        }
        _image = image;
        _slotSectors = slotSectors;
        _slotBytes = slotSectors * image.Format.BlockSize;
        long slots = image.SectorCount / slotSectors;
        _held = new long[slots];
        _floor = new long[slots];
        _flushedHeld = new long[slots];
        Boot = Random.Shared.NextInt64(1, long.MaxValue);
        string path = FencePath(image.Path);
        bool exists = File.Exists(path);
        _fence = File.OpenHandle(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite);
        try
        {
            byte[] all = new byte[HeaderSize + slots * SlotSize];
            int read = exists ? ReadFully(_fence, all) : 0;
            if (read >= HeaderSize && BinaryPrimitives.ReadInt64LittleEndian(all) != Magic)
            {
                throw new DifArgumentException(DifError.BadImage, $"fence file {path} is not a fence file of this version (layout 4); it belongs to another build: move the data directory aside");
            }
            if (read >= HeaderSize)
            {
                _epochReserved = BinaryPrimitives.ReadInt64LittleEndian(all.AsSpan(8));
                _flushSequence = BinaryPrimitives.ReadInt64LittleEndian(all.AsSpan(16));
                _completedSequence = BinaryPrimitives.ReadInt64LittleEndian(all.AsSpan(CompletedSequenceOffset));
                // A slot written by a flush that never marked itself complete is in doubt: if its data differs from
                // what that flush wrote, the flush was cut short. After a complete flush such a slot is a write the
                // medium lost (or tore, or put elsewhere): left as the fence says, for the version tags to report.
                int whole = (read - HeaderSize) / SlotSize;
                for (int s = 0; s < Math.Min(whole, slots); s++)
                {
                    Span<byte> r = all.AsSpan(HeaderSize + s * SlotSize, SlotSize);
                    _held[s] = _flushedHeld[s] = BinaryPrimitives.ReadInt64LittleEndian(r);
                    _floor[s] = BinaryPrimitives.ReadInt64LittleEndian(r[8..]);
                    long previous = BinaryPrimitives.ReadInt64LittleEndian(r[16..]);
                    long sequence = BinaryPrimitives.ReadInt64LittleEndian(r[24..]);
                    ulong hash = BinaryPrimitives.ReadUInt64LittleEndian(r[32..]);
                    if (sequence > _completedSequence && previous != _held[s] && !Landed(s, hash))
                    {
                        // Written by the last flush, which died between its fence and its data: the slot holds the
                        // version before (or a torn mix, which the page's version tags then report).
                        _held[s] = _flushedHeld[s] = previous;
                        _fenceDirty.Add(s);
                        Reverted++;
                    }
                }
            }
            _nextEpoch = _epochReserved + 1;
            ReserveEpochs();
        }
        catch
        {
            _fence.Dispose();
            throw;
        }
    }

    public static string FencePath(string imagePath) => imagePath + ".fence";

    /// <summary>Random per open: a caller that sees it change knows the cache it wrote to is gone.</summary>
    public long Boot { get; }

    public DiskImage Image => _image;

    public long SectorCount => _image.SectorCount;

    /// <summary>Page slots currently in the volatile cache.</summary>
    public int CachedSlots
    {
        get
        {
            lock (_gate)
            {
                return _cache.Count;
            }
        }
    }

    /// <summary>FLUSH commands that did I/O (coalesced ones count once).</summary>
    public long Flushes { get; private set; }

    /// <summary>Synchronous metadata commits (epoch reservations).</summary>
    public long MetadataCommits { get; private set; }

    /// <summary>A new page epoch, never handed out before by this disk (reserved durably in blocks).</summary>
    public long NewEpoch()
    {
        lock (_gate)
        {
            if (_nextEpoch > _epochReserved)
            {
                ReserveEpochs();
            }
            return _nextEpoch++;
        }
    }

    /// <summary>
    /// Slots this open found written by a last flush that died between its fence and its data, and set back to the
    /// version before. The fence records a hash of the PI tuples each slot's new data carries (guards and version
    /// tags), so the open compares those, not the 16-bit version tags alone (they repeat every 65535 versions), and
    /// bit rot in the data since (which the guards catch when the page is read) is not taken for a flush cut short.
    /// </summary>
    public int Reverted { get; }

    private bool Landed(long slot, ulong hash)
    {
        byte[] blocks = new byte[_slotBytes];
        _image.ReadRaw(slot * _slotSectors, blocks);
        return TuplesHash(blocks) == hash;
    }

    /// <summary>A hash of the PI tuples of a slot's raw blocks (sector data + tuple each).</summary>
    private ulong TuplesHash(ReadOnlySpan<byte> blocks)
    {
        int block = _image.Format.BlockSize;
        int size = block - _image.Format.TupleSize;
        Span<byte> tuples = stackalloc byte[_slotSectors * _image.Format.TupleSize];
        for (int i = 0; i < _slotSectors; i++)
        {
            blocks.Slice(i * block + size, _image.Format.TupleSize).CopyTo(tuples[(i * _image.Format.TupleSize)..]);
        }
        return System.IO.Hashing.XxHash64.HashToUInt64(tuples);
    }

    /// <summary>
    /// How many writes the cache has taken (a write's landing sequence): a <see cref="FlushAsync"/> called after a
    /// write was taken puts it on the medium, so a flush begun at <c>Landings == n</c> covers every landing up to n.
    /// </summary>
    public long Landings
    {
        get
        {
            lock (_gate)
            {
                return _writeGeneration;
            }
        }
    }

    /// <summary>The version the disk holds for the page slot of <paramref name="lba"/> (0: never written by a page).</summary>
    public long HeldVersion(long lba)
    {
        lock (_gate)
        {
            return _held[SlotOf(lba)];
        }
    }

    /// <summary>The version the medium holds for the page slot of <paramref name="lba"/>, as of the last flush.</summary>
    public long FlushedVersion(long lba)
    {
        lock (_gate)
        {
            return _flushedHeld[SlotOf(lba)];
        }
    }

    /// <summary>
    /// A new activation of a page takes its slot: commands of versions below <paramref name="floor"/> are refused
    /// from now on (a writeback of an activation that died cannot land after this one read the page).
    /// </summary>
    public void Claim(long lba, long floor)
    {
        lock (_gate)
        {
            long slot = SlotOf(lba);
            if (floor > _floor[slot])
            {
                _floor[slot] = floor;
                _fenceDirty.Add(slot);
            }
        }
    }

    /// <summary>
    /// A write of whole pages, one version each: refused whole when any page is older than what its slot holds or
    /// its floor; otherwise cached and the slots' versions advanced. The caller verified the PI.
    /// </summary>
    public FencedWrite WritePages(long lba, ReadOnlySpan<byte> data, ReadOnlySpan<byte> pi, ReadOnlySpan<long> versions)
    {
        lock (_gate)
        {
            if (versions.Length * _slotSectors * _image.Format.DataSize != data.Length)
            {
                throw new DifArgumentException(DifError.NotWholeSectors, $"a page write must cover whole slots of {_slotSectors} sectors, one version each");
            }
            FencedWrite fenced = RecordPages(lba, versions);
            if (fenced == FencedWrite.Accepted)
            {
                Write(lba, data, pi);
            }
            return fenced;
        }
    }

    /// <summary>
    /// A repair: the slot's content rewritten at the version the slot holds (from a good copy of that version), the
    /// fence unchanged. Refused (<see cref="FencedWrite.Stale"/>) unless the slot holds exactly
    /// <paramref name="version"/>: a newer write that landed meanwhile is left alone. Not a new write, so the floor a
    /// new page activation claimed does not refuse it. The caller verified the PI.
    /// </summary>
    public FencedWrite RewriteHeld(long lba, ReadOnlySpan<byte> data, ReadOnlySpan<byte> pi, long version)
    {
        lock (_gate)
        {
            if (lba % _slotSectors != 0 || data.Length != _slotSectors * _image.Format.DataSize)
            {
                throw new DifArgumentException(DifError.NotWholeSectors, $"a repair rewrites one whole slot of {_slotSectors} sectors");
            }
            if (_held[SlotOf(lba)] != version)
            {
                return FencedWrite.Stale;
            }
            Write(lba, data, pi);
            return FencedWrite.Accepted;
        }
    }

    /// <summary>
    /// The fence of a page command, alone: refused whole (<see cref="FencedWrite.Stale"/>) when any page is older
    /// than what its slot holds or its floor; otherwise the slots' versions advance. <see cref="WritePages"/> then
    /// caches the data; a faulty medium (fault injection) records the command without it, as a controller that
    /// acknowledged a write it lost.
    /// </summary>
    public FencedWrite RecordPages(long lba, ReadOnlySpan<long> versions)
    {
        lock (_gate)
        {
            long first = SlotOf(lba);
            if (lba % _slotSectors != 0 || first + versions.Length > _held.Length)
            {
                throw new DifArgumentException(DifError.NotWholeSectors, $"a page write must cover whole slots of {_slotSectors} sectors, one version each");
            }
            for (int i = 0; i < versions.Length; i++)
            {
                if (versions[i] < _held[first + i] || versions[i] < _floor[first + i])
                {
                    return FencedWrite.Stale;
                }
            }
            for (int i = 0; i < versions.Length; i++)
            {
                _held[first + i] = versions[i];
                _fenceDirty.Add(first + i);
            }
            return FencedWrite.Accepted;
        }
    }

    /// <summary>Writes sectors from separate data and PI buffers into the cache, interleaved as on the medium.</summary>
    public void Write(long lba, ReadOnlySpan<byte> data, ReadOnlySpan<byte> pi)
    {
        int size = _image.Format.DataSize;
        int count = CheckCommand(lba, data.Length / size, data.Length, pi.Length);
        int block = _image.Format.BlockSize;
        byte[] raw = System.Buffers.ArrayPool<byte>.Shared.Rent(count * block);
        try
        {
            _image.Format.Interleave(count, data, pi, raw);
            WriteRaw(lba, raw.AsSpan(0, count * block));
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(raw);
        }
    }

    /// <summary>Writes whole blocks (data + tuple each) into the cache. Does not verify them.</summary>
    public void WriteRaw(long lba, ReadOnlySpan<byte> blocks)
    {
        lock (_gate)
        {
            int block = _image.Format.BlockSize;
            int count = blocks.Length / block;
            CheckCommand(lba, count, count * _image.Format.DataSize, count * _image.Format.TupleSize);
            long sector = lba;
            int done = 0;
            while (done < count)
            {
                long slot = sector / _slotSectors;
                int within = (int)(sector % _slotSectors);
                int n = Math.Min(count - done, _slotSectors - within);
                byte[] next = n == _slotSectors ? new byte[_slotBytes] : SlotCopy(slot);
                blocks.Slice(done * block, n * block).CopyTo(next.AsSpan(within * block));
                _cache[slot] = next;
                done += n;
                sector += n;
            }
            _writeGeneration++;
        }
    }

    /// <summary>Reads sectors as the disk holds them now: the image, overlaid with the cache.</summary>
    public void Read(long lba, Span<byte> data, Span<byte> pi)
    {
        int size = _image.Format.DataSize;
        int count = CheckCommand(lba, data.Length / size, data.Length, pi.Length);
        int block = _image.Format.BlockSize;
        byte[] raw = System.Buffers.ArrayPool<byte>.Shared.Rent(count * block);
        try
        {
            ReadRaw(lba, raw.AsSpan(0, count * block));
            _image.Format.Split(count, raw, data, pi);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(raw);
        }
    }

    /// <summary>Reads whole blocks as the disk holds them now.</summary>
    public void ReadRaw(long lba, Span<byte> blocks)
    {
        lock (_gate)
        {
            int block = _image.Format.BlockSize;
            int count = blocks.Length / block;
            CheckCommand(lba, count, count * _image.Format.DataSize, count * _image.Format.TupleSize);
            _image.ReadRaw(lba, blocks);
            if (_cache.Count == 0)
            {
                return;
            }
            for (long slot = lba / _slotSectors; slot <= (lba + count - 1) / _slotSectors; slot++)
            {
                if (!_cache.TryGetValue(slot, out byte[]? cached))
                {
                    continue;
                }
                long from = Math.Max(lba, slot * _slotSectors);
                long to = Math.Min(lba + count, (slot + 1) * _slotSectors);
                cached.AsSpan((int)(from - slot * _slotSectors) * block, (int)(to - from) * block)
                    .CopyTo(blocks.Slice((int)(from - lba) * block));
            }
        }
    }

    /// <summary>
    /// FLUSH CACHE: returns when every write made before the call is on the medium, with the fence. A caller that
    /// finds a flush under way waits for it and then, if its own writes came after that flush took its snapshot,
    /// for the next one, which every caller waiting meanwhile shares (group commit).
    /// </summary>
    public async Task FlushAsync()
    {
        long wanted;
        bool fenceWanted;
        lock (_gate)
        {
            wanted = _writeGeneration;
            fenceWanted = _fenceDirty.Count > 0;
        }
        while (true)
        {
            Task running;
            lock (_gate)
            {
                if (_flushedGeneration >= wanted && !(fenceWanted && _fenceDirty.Count > 0))
                {
                    return;
                }
                _flushing ??= FlushOnceAsync();
                running = _flushing;
            }
            await running;
            fenceWanted = false;
        }
    }

    private async Task FlushOnceAsync()
    {
        await Task.Yield(); // let the callers of this turn join before the snapshot is taken
        long generation, sequence;
        List<(long Slot, byte[] Blocks)> slots;
        List<(long Slot, long Held, long Floor, long Previous, ulong Hash)> fence;
        lock (_gate)
        {
            generation = _writeGeneration;
            slots = new List<(long Slot, byte[] Blocks)>(_cache.Count);
            foreach (var (slot, blocks) in _cache)
            {
                slots.Add((slot, blocks));
            }
            sequence = ++_flushSequence;
            fence = new List<(long Slot, long Held, long Floor, long Previous, ulong Hash)>(_fenceDirty.Count);
            foreach (long slot in _fenceDirty)
            {
                // The hash of the tuples this flush writes to the slot: an open after a crash tells whether they landed.
                ulong hash = _cache.TryGetValue(slot, out byte[]? blocks) ? TuplesHash(blocks) : 0;
                fence.Add((slot, _held[slot], _floor[slot], _flushedHeld[slot], hash));
            }
            _fenceDirty.Clear();
        }
        try
        {
            await Task.Run(() =>
            {
                // The fence first, with the version each slot held before and this flush's sequence; then the data,
                // then the mark that it completed. A flush cut short leaves data behind its fence only in slots of a
                // sequence above the last mark, which an open reconciles against the hash of the tuples written.
                Span<byte> record = stackalloc byte[SlotSize];
                foreach (var (slot, held, floor, previous, hash) in fence)
                {
                    BinaryPrimitives.WriteInt64LittleEndian(record, held);
                    BinaryPrimitives.WriteInt64LittleEndian(record[8..], floor);
                    BinaryPrimitives.WriteInt64LittleEndian(record[16..], previous);
                    BinaryPrimitives.WriteInt64LittleEndian(record[24..], sequence);
                    BinaryPrimitives.WriteUInt64LittleEndian(record[32..], hash);
                    RandomAccess.Write(_fence, record, HeaderSize + slot * SlotSize);
                }
                Span<byte> seq = stackalloc byte[8];
                BinaryPrimitives.WriteInt64LittleEndian(seq, sequence);
                RandomAccess.Write(_fence, seq, 16);
                RandomAccess.FlushToDisk(_fence);
                foreach (var (slot, blocks) in slots)
                {
                    _image.WriteRaw(slot * _slotSectors, blocks);
                }
                _image.Flush();
                // Complete: marked without a flush of its own. The mark matters only while this is the disk's last
                // flush (the next one begins after it, so its slots are never in doubt again); a power loss that takes
                // the mark with the page cache leaves this flush's slots in doubt, as if it were cut short.
                lock (_gate)
                {
                    // Under the lock: an epoch reservation rewrites the header, with this mark from now on.
                    _completedSequence = Math.Max(_completedSequence, sequence);
                    BinaryPrimitives.WriteInt64LittleEndian(record, _completedSequence);
                    RandomAccess.Write(_fence, record[..8], CompletedSequenceOffset);
                }
            });
            lock (_gate)
            {
                foreach (var (slot, blocks) in slots)
                {
                    if (_cache.TryGetValue(slot, out byte[]? now) && ReferenceEquals(now, blocks))
                    {
                        _cache.Remove(slot); // on the medium, and not written again since the snapshot
                    }
                }
                foreach (var (slot, held, _, _, _) in fence)
                {
                    _flushedHeld[slot] = Math.Max(_flushedHeld[slot], held);
                }
                _flushedGeneration = Math.Max(_flushedGeneration, generation);
                Flushes++;
                _flushing = null;
            }
        }
        catch
        {
            lock (_gate)
            {
                foreach (var (slot, _, _, _, _) in fence)
                {
                    _fenceDirty.Add(slot);
                }
                _flushing = null;
            }
            throw;
        }
    }

    private void ReserveEpochs()
    {
        _epochReserved = Math.Max(_epochReserved, _nextEpoch - 1) + EpochBlock;
        Span<byte> header = stackalloc byte[HeaderSize];
        BinaryPrimitives.WriteInt64LittleEndian(header, Magic);
        BinaryPrimitives.WriteInt64LittleEndian(header[8..], _epochReserved);
        BinaryPrimitives.WriteInt64LittleEndian(header[16..], _flushSequence);
        BinaryPrimitives.WriteInt64LittleEndian(header[CompletedSequenceOffset..], _completedSequence);
        RandomAccess.Write(_fence, header, 0);
        RandomAccess.FlushToDisk(_fence);
        MetadataCommits++;
    }

    private byte[] SlotCopy(long slot)
    {
        byte[] copy = new byte[_slotBytes];
        if (_cache.TryGetValue(slot, out byte[]? cached))
        {
            cached.CopyTo(copy, 0);
        }
        else
        {
            _image.ReadRaw(slot * _slotSectors, copy);
        }
        return copy;
    }

    private long SlotOf(long lba)
    {
        if (lba < 0 || lba >= _image.SectorCount)
        {
            throw new DifArgumentException(DifError.OutOfRange, $"LBA {lba} is outside the disk of {_image.SectorCount} sectors");
        }
        return lba / _slotSectors;
    }

    private int CheckCommand(long lba, int count, int dataLength, int piLength)
    {
        int size = _image.Format.DataSize;
        if (count <= 0 || dataLength != count * size || piLength != count * _image.Format.TupleSize)
        {
            throw new DifArgumentException(DifError.NotWholeSectors, $"{dataLength} data bytes and {piLength} PI bytes are not whole sectors with one tuple each");
        }
        if (lba < 0 || lba > _image.SectorCount - count)
        {
            throw new DifArgumentException(DifError.OutOfRange, $"LBA {lba} + {count} sectors is outside the disk of {_image.SectorCount} sectors");
        }
        return count;
    }

    private static int ReadFully(SafeFileHandle handle, Span<byte> buffer)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int n = RandomAccess.Read(handle, buffer[total..], total);
            if (n == 0)
            {
                break;
            }
            total += n;
        }
        return total;
    }

    public void Dispose() => _fence.Dispose();
}

using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansDif.Protection;

namespace OrleansDif.Grains;

/// <summary>
/// An emulated DIF-formatted disk: sectors of data + PI tuple (8 bytes, or 16 with the 64-bit guard) in a disk image, behind a volatile write cache
/// (<see cref="CachedDisk"/>). Every tuple of a write is verified before anything is cached; one failing sector
/// rejects the whole command; a page command older than what the disk holds for a page is refused as stale.
/// Writes are durable after a flush, which runs off the grain's turn and coalesces with concurrent ones. Reads
/// verify the stored tuples and never return corrupt data as good. A volume's disks are spread over the silos
/// (<see cref="DiskSpreadPlacement"/>). Reentrant: a flush under way does not hold writes back.
/// <para>
/// Mirrors (<see cref="VolumeConfig.Mirrors"/> &gt; 1): this grain ("volume/d") is the mirror set's primary, copy 0,
/// and its copies are disk grains "volume/d/c" on other silos. The primary runs every command first and passes
/// the commands it accepted to each copy (one batch per copy, with the flush when there is one); a command succeeds
/// when the primary takes it, and a copy that does not take it (no answer within <see cref="CopyTimeout"/>, a
/// refusal, or an answer from a new activation that lost its cache) is recorded out of sync in the
/// <see cref="MirrorSet"/> and resynced in the background. A page load that fails a check on the primary (a tuple,
/// or a sector's version tag) is served from a copy holding the same page version that passes every check, and the
/// primary's slot is rewritten from it (repaired); <see cref="Scrub"/> does the same for every slot of every copy.
/// </para>
/// </summary>
[Reentrant]
[DiskSpreadPlacement]
public sealed partial class DiskGrain(IOptions<StorageOptions> options, OpenImages openImages, ILogger<DiskGrain> logger) : Grain, IDiskGrain
{
    /// <summary>The most a command batch carries (the same bound as one command).</summary>
    public const long MaxBatchBytes = 16 << 20;

    /// <summary>How long a primary waits for a copy before recording it out of sync (liveness only: versions decide what a copy may serve).</summary>
    public static readonly TimeSpan CopyTimeout = TimeSpan.FromSeconds(5);

    private int _number, _copy; // this disk's number in its volume, and which copy of it this grain is
    private MirrorSet? _mirror;
    private bool _resyncing;
    private readonly Dictionary<long, TaskCompletionSource> _mending = [];
    private readonly HashSet<(long Slot, long Held)> _unrepairableSeen = [];
    private long _repaired, _unrepairable;

    private DiskImage? _image;
    private CachedDisk? _disk;
    private long _stale;
    private VolumeConfig? _config;
    private DiskDevice? _device;
    private bool _verifyOnWrite = true;
    private long _verifyTicks;
    private readonly List<(FaultKind Kind, long Lba)> _pendingFaults = [];
    private readonly List<FaultRecord> _faultLog = [];
    private long _sectorsWritten, _sectorsRead, _readErrors, _commands;
    private CheckCounts _rejected;

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        // No flush here: after a silo loss Orleans may briefly run two activations of one disk, and the one that
        // goes away must not write its (older) cache over what the other made durable. What is unflushed is lost,
        // as on a power cut; the pages that wrote it are still dirty or are dirtied again by the next fsync.
        if (_image is not null)
        {
            _disk?.Dispose();
            openImages.Release(_image);
        }
        _image = null;
        _disk = null;
        _device = null;
        return Task.CompletedTask;
    }

    public async Task Format(VolumeConfig config, int disk)
    {
        var (volume, number, copy) = GrainKeys.ParseDisk(this.GetPrimaryKeyString());
        if (volume != config.Id || number != disk || disk >= config.Disks || copy >= config.Mirrors)
        {
            throw new StorageException(StorageError.InvalidConfig, $"disk {this.GetPrimaryKeyString()} is not disk {disk} of '{config.Id}'");
        }
        Open(config);
        if (_mirror is not null)
        {
            // The copies exist before the volume is recorded, as the disks do.
            await Task.WhenAll(Enumerable.Range(1, config.Mirrors - 1).Select(c => GrainFactory.DiskCopy(volume, disk, c).Format(config, disk)));
            StartResync();
        }
    }

    public async Task<DiskWriteResult> Write(long lba, byte[] data, byte[] pi)
    {
        await EnsureOpen();
        if (_config!.Mirrors > 1)
        {
            // A write without page versions would leave copies that missed it holding other bytes under the same version.
            throw new StorageException(StorageError.InvalidConfig,
                $"disk {this.GetPrimaryKeyString()} is mirrored: it takes page commands only, whose versions fence its copies");
        }
        return await WriteCommand(lba, data, pi, null);
    }

    public async Task<DiskWriteResult> WritePages(long lba, byte[] data, byte[] pi, long[] versions)
    {
        await EnsureOpen();
        CheckPageCommand(lba, data, versions);
        DiskWriteResult result = await WriteCommand(lba, data!, pi, versions);
        if (result.Accepted && _mirror is not null)
        {
            await Forward([new DiskCommand(lba, data!, pi, versions)], flush: false);
        }
        return result;
    }

    public async Task<DiskWriteResult[]> WritePageBatch(DiskCommand[] commands)
    {
        DiskWriteResult[] results = await RunBatch(commands);
        await Forward(Accepted(commands, results), flush: false);
        return results;
    }

    private async Task<DiskWriteResult[]> RunBatch(DiskCommand[] commands)
    {
        await EnsureOpen();
        if (commands is null || commands.Length == 0)
        {
            throw new StorageException(StorageError.EmptyBuffer, "a command batch without commands");
        }
        long pages = 0;
        foreach (DiskCommand c in commands)
        {
            // Every command checked before any runs: a malformed batch changes nothing.
            CheckPageCommand(c.Lba, c.Data, c.Versions);
            CheckCommand(c.Lba, c.Data.Length, c.Pi?.Length ?? 0);
            pages += c.Versions.Length;
        }
        if (pages * VolumeConfig.PageSize > MaxBatchBytes)
        {
            throw new StorageException(StorageError.BufferTooLarge, $"a batch of {pages} pages is over {MaxBatchBytes >> 20} MiB");
        }
        var results = new DiskWriteResult[commands.Length];
        for (int i = 0; i < commands.Length; i++)
        {
            results[i] = await WriteCommand(commands[i].Lba, commands[i].Data, commands[i].Pi, commands[i].Versions);
        }
        return results;
    }

    public async Task<DiskFlushedBatch> WritePageBatchAndFlush(DiskCommand[] commands)
    {
        DiskWriteResult[] results = await RunBatch(commands);
        // The copies get the accepted commands and their flush in one call each, while this disk flushes.
        Task copies = Forward(Accepted(commands, results), flush: true);
        DiskFlushedBatch flushed = await FlushLocal();
        await copies;
        return flushed with { Results = results };
    }

    private DiskCommand[] Accepted(DiskCommand[] commands, DiskWriteResult[] results)
    {
        if (_mirror is null)
        {
            return [];
        }
        int n = 0;
        for (int i = 0; i < results.Length; i++)
        {
            n += results[i].Accepted ? 1 : 0;
        }
        if (n == commands.Length)
        {
            return commands;
        }
        var accepted = new DiskCommand[n];
        for (int i = 0, j = 0; i < results.Length; i++)
        {
            if (results[i].Accepted)
            {
                accepted[j++] = commands[i];
            }
        }
        return accepted;
    }

    private void CheckPageCommand(long lba, byte[]? data, long[]? versions)
    {
        int spp = _config!.SectorsPerPage;
        if (versions is null || versions.Length == 0 || lba % spp != 0 || (data?.Length ?? 0) != versions.Length * VolumeConfig.PageSize)
        {
            throw new StorageException(StorageError.OutOfRange, $"a page command covers whole pages from a page boundary with one version each ({versions?.Length ?? 0} versions, {data?.Length ?? 0} bytes at LBA {lba})");
        }
    }

    public async Task<DiskPageRead> LoadPage(long lba, bool claim)
    {
        await EnsureOpen();
        if (lba % _config!.SectorsPerPage != 0)
        {
            throw new StorageException(StorageError.OutOfRange, $"LBA {lba} is not the start of a page");
        }
        CheckRange(lba, _config.SectorsPerPage);
        DiskPageRead read = _device!.LoadPage(lba, claim);
        if (_mirror is not null && Checked(lba, read).Failure is ProtectionFailure bad)
        {
            ReadError(bad);
            if (await RepairFromCopies(lba, read.HeldVersion, bad) is SlotRead good)
            {
                _sectorsRead += _config.SectorsPerPage;
                return read with { Data = good.Data, Pi = good.Pi, Failure = null, Error = null };
            }
            if (read.Failure is null)
            {
                return read; // a version tag no copy could mend: the page reports it
            }
        }
        if (read.Failure is ProtectionFailure failure)
        {
            if (_mirror is null)
            {
                ReadError(failure);
            }
            return read with { Error = $"disk {this.GetPrimaryKeyString()}: {failure}" };
        }
        _sectorsRead += _config.SectorsPerPage;
        return read;
    }

    public async Task<long> FlushedVersion(long lba)
    {
        await EnsureOpen();
        CheckRange(lba, 1);
        return _disk!.FlushedVersion(lba);
    }

    public async Task<long> Flush()
    {
        await EnsureOpen();
        Task copies = Forward([], flush: true);
        DiskFlushedBatch flushed = await FlushLocal();
        await copies;
        return flushed.Boot;
    }

    public async Task<DiskFlushedBatch> FlushMarked()
    {
        await EnsureOpen();
        return await FlushLocal();
    }

    private async Task<DiskFlushedBatch> FlushLocal()
    {
        CachedDisk disk = _disk!;
        long upTo = disk.Landings; // taken before the flush begins: every landing up to here is in it
        await disk.FlushAsync();
        return new DiskFlushedBatch([], disk.Boot, upTo);
    }

    private async Task<DiskWriteResult> WriteCommand(long lba, byte[] data, byte[] pi, long[]? versions)
    {
        await EnsureOpen();
        CachedDisk disk = _disk!;
        DiskDevice device = _device!;
        int count = CheckCommand(lba, data?.Length ?? 0, pi?.Length ?? 0);
        _commands++;
        PiError? error = null;
        if (_verifyOnWrite)
        {
            long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
            error = device.Verify(data, pi, lba);
            _verifyTicks += System.Diagnostics.Stopwatch.GetTimestamp() - t0;
        }
        if (error is PiError failed)
        {
            ProtectionFailure failure = GrainHelpers.ToFailure(failed);
            _rejected.Add(failure.Check);
            DifMetrics.DiskRejections.Add(1, new KeyValuePair<string, object?>("check", GrainHelpers.Tag(failure.Check)));
            logger.LogDebug("Disk {Disk} rejected a write: {Failure}", this.GetPrimaryKeyString(), failure);
            return new DiskWriteResult(false, failure);
        }
        int pending = _pendingFaults.FindIndex(f => f.Lba < 0 || (f.Lba >= lba && f.Lba < lba + count));
        if (pending >= 0)
        {
            FaultKind fault = _pendingFaults[pending].Kind;
            _pendingFaults.RemoveAt(pending);
            // The same fence as any page command; the controller's record says written, whatever reaches the medium.
            if (device.LandFaulty(fault, lba, data!, pi!, versions) is not long target)
            {
                return Stale();
            }
            Log(new FaultRecord(fault, lba, count, target, -1));
            return new DiskWriteResult(true, null, false, disk.Boot, disk.Landings); // acknowledged, whatever reached the medium
        }
        await StepHooks.PassAsync(_config!.Id, StepHooks.DiskCommand);
        if (!ReferenceEquals(disk, _disk))
        {
            throw new StorageException(StorageError.IntegrityError, "the disk closed while the command waited"); // its silo is going down
        }
        if (device.Land(lba, data, pi, versions) == FencedWrite.Stale)
        {
            return Stale();
        }
        _sectorsWritten += count;
        DifMetrics.DiskSectorsWritten.Add(count);
        return new DiskWriteResult(true, null, false, disk.Boot, disk.Landings);
    }

    private DiskWriteResult Stale()
    {
        _stale++;
        DifMetrics.StaleCommands.Add(1);
        return new DiskWriteResult(false, null, true, _disk!.Boot);
    }

    public async Task<DiskReadResult> Read(long lba, int sectors)
    {
        await EnsureOpen();
        if (sectors <= 0)
        {
            throw new StorageException(StorageError.EmptyBuffer, $"read of {sectors} sectors");
        }
        int size = _config!.SectorSize;
        if ((long)sectors * size > 16 << 20)
        {
            throw new StorageException(StorageError.BufferTooLarge, $"read of {sectors} sectors is over 16 MiB");
        }
        CheckRange(lba, sectors);
        byte[] data = new byte[sectors * size];
        byte[] pi = new byte[sectors * _config.TupleSize];
        // Reads always verify, whatever VerifyOnDisk says: corrupt data is never returned as good.
        PiError? error = _device!.Read(lba, data, pi);
        if (error is not null && _mirror is not null && await RepairRange(lba, sectors))
        {
            error = _device.Read(lba, data, pi); // the failing slots rewritten from good copies
        }
        if (error is PiError failed)
        {
            ProtectionFailure failure = GrainHelpers.ToFailure(failed);
            if (_mirror is null)
            {
                ReadError(failure); // a mirror set counted it where it tried to repair it
            }
            throw new StorageException(StorageError.IntegrityError, $"disk {this.GetPrimaryKeyString()}: {failure}", failure);
        }
        _sectorsRead += sectors;
        return new DiskReadResult(data, pi);
    }

    private void ReadError(ProtectionFailure failure)
    {
        _readErrors++;
        DifMetrics.DiskReadErrors.Add(1, new KeyValuePair<string, object?>("check", GrainHelpers.Tag(failure.Check)));
    }

    public async Task<DiskStats> GetStats()
    {
        await EnsureOpen();
        return new DiskStats(_sectorsWritten, _sectorsRead, _rejected.Guard, _rejected.App, _rejected.Ref, _readErrors, _commands,
            _image!.Path, RuntimeIdentity, _verifyTicks * 1000.0 / System.Diagnostics.Stopwatch.Frequency,
            _disk!.Flushes, _stale, _disk.MetadataCommits, _repaired, _mirror?.ResyncedSlots ?? 0, _mirror?.OutOfSyncCount ?? 0, _unrepairable);
    }

    public async Task InjectFault(FaultKind kind, long lba, int count)
    {
        await EnsureOpen();
        switch (kind)
        {
            case FaultKind.MediaBitrot:
                CheckRange(lba, 1);
                options.Value.RequireFaultInjection(kind);
                await _disk!.FlushAsync(); // bit rot hits data at rest, on the medium
                int block = _config!.SectorSize + _config.TupleSize;
                byte[] raw = new byte[block];
                _image!.ReadRaw(lba, raw);
                int bit = Random.Shared.Next(_config.SectorSize * 8);
                raw[bit / 8] ^= (byte)(1 << (bit % 8));
                _image.WriteRaw(lba, raw);
                _image.Flush();
                Log(new FaultRecord(kind, lba, 1, lba, -1));
                break;
            case FaultKind.MisdirectedWrite or FaultKind.TornWrite or FaultKind.LostWrite:
                if (count is < 1 or > 1_000_000)
                {
                    throw new StorageException(StorageError.OutOfRange, $"{count} commands: must be 1..1000000");
                }
                if (lba != -1)
                {
                    CheckRange(lba, 1);
                }
                options.Value.RequireFaultInjection(kind);
                for (int i = 0; i < count; i++)
                {
                    _pendingFaults.Add((kind, lba));
                }
                break;
            default:
                throw new StorageException(StorageError.InvalidConfig, $"{FaultKinds.Name(kind)} is not a disk fault");
        }
    }

    public async Task<FaultRecord[]> GetFaultLog()
    {
        await EnsureOpen();
        return [.. _faultLog];
    }

    private void Log(FaultRecord record)
    {
        if (_faultLog.Count < 100_000)
        {
            _faultLog.Add(record);
        }
    }

    private async Task EnsureOpen()
    {
        if (_image is not null)
        {
            return;
        }
        var (volume, disk, copy) = GrainKeys.ParseDisk(this.GetPrimaryKeyString());
        VolumeConfig config = await GrainFactory.Volume(volume).GetConfig();
        if (disk < 0 || disk >= config.Disks || copy >= config.Mirrors)
        {
            throw new StorageException(StorageError.OutOfRange, copy == 0
                ? $"volume '{volume}' has no disk {disk}"
                : $"volume '{volume}' has no copy {copy} of disk {disk} (mirrors {config.Mirrors})");
        }
        if (_image is null)
        {
            Open(config);
            StartResync(); // a primary that starts has no record: it compares every slot
        }
    }

    private void Open(VolumeConfig config)
    {
        if (_image is not null)
        {
            return;
        }
        var (_, disk, copy) = GrainKeys.ParseDisk(this.GetPrimaryKeyString());
        string path = options.Value.ImagePath(config.Id, disk, copy);
        SectorFormat format = GrainHelpers.Format(config);
        if (!File.Exists(path))
        {
            File.Delete(path + ".repairs"); // a new image has no repair history
        }
        DiskImage image = File.Exists(path)
            ? DiskImage.Open(path, writable: true)
            : DiskImage.Create(path, format, (PiType)config.PiType, config.SectorsPerDisk, this.GetPrimaryKeyString());
        if (image.Format != format || image.PiType != (PiType)config.PiType || image.SectorCount != config.SectorsPerDisk)
        {
            image.Dispose();
            throw new StorageException(StorageError.InvalidConfig, $"image {path} does not have the geometry of volume '{config.Id}'");
        }
        _image = openImages.Track(image);
        _disk = new CachedDisk(image, config.SectorsPerPage);
        _device = new DiskDevice(config, _disk);
        _config = config;
        _verifyOnWrite = config.VerifyOnDisk;
        (_number, _copy) = (disk, copy);
        if (copy == 0 && config.Mirrors > 1)
        {
            _mirror = new MirrorSet(config.Mirrors, config.SectorsPerDisk / config.SectorsPerPage);
            _mirror.AllOutOfSync();
        }
    }

    public async Task SetVerifyOnWrite(bool enabled)
    {
        await EnsureOpen();
        _verifyOnWrite = enabled;
    }

    private int CheckCommand(long lba, int dataLength, int piLength)
    {
        int size = _config!.SectorSize;
        if (dataLength == 0)
        {
            throw new StorageException(StorageError.EmptyBuffer, "write command without data");
        }
        if (dataLength % size != 0)
        {
            throw new StorageException(StorageError.NotWholeSectors, $"{dataLength} bytes is not a whole number of {size}-byte sectors");
        }
        if (dataLength > 16 << 20)
        {
            throw new StorageException(StorageError.BufferTooLarge, $"write of {dataLength} bytes is over 16 MiB");
        }
        int count = dataLength / size;
        if (piLength != count * _config!.TupleSize)
        {
            throw new StorageException(StorageError.PiCountMismatch, $"{count} sectors need {count * _config.TupleSize} PI bytes, got {piLength}");
        }
        CheckRange(lba, count);
        return count;
    }

    private void CheckRange(long lba, int count)
    {
        if (lba < 0 || lba > _image!.SectorCount - count)
        {
            throw new StorageException(StorageError.OutOfRange, $"LBA {lba} + {count} sectors is outside the disk of {_image!.SectorCount} sectors");
        }
    }
}

namespace OrleansDif.Nbd;

/// <summary>
/// A volume as a block device. A write becomes page writes (copy-in with guard tags; a write that meets a page under
/// stable writeback waits, as a block device write blocks), a read becomes page reads (a page that fails a PI or
/// memory check is EIO, never data), a flush is the volume's fsync (a loss or a poisoned page is EIO), FUA is a write
/// then the fsync of its pages, and zeroing writes zero pages. Pages of one request go out in parallel.
/// </summary>
public sealed class VolumeDevice : IBlockDevice
{
    private const int PageSize = VolumeConfig.PageSize;
    private const int MaxParallelPages = 256;

    private readonly IGrainFactory _grains;
    private readonly VolumeConfig _volume;
    private readonly FlushCoalescer _flushes;

    /// <summary>
    /// A device inside a silo registers its volume with the silo's page-cache placement first, so that the pages it
    /// activates stay in its process.
    /// </summary>
    public VolumeDevice(IGrainFactory grains, VolumeConfig volume)
    {
        _grains = grains;
        _volume = volume;
        _flushes = new FlushCoalescer(() => Sync(0, volume.Pages));
    }

    /// <summary>The writeback errors this device's fsyncs were told of, for its handles.</summary>
    public DeviceErrorLog Errors { get; } = new();

    /// <summary>A new open of the device: told of writeback errors recorded from now on.</summary>
    public async Task<VolumeHandle> OpenAsync()
    {
        ErrorMark now = await Guard(() => _grains.Flusher(_volume.Id).SampleErrors());
        Errors.Start(now);
        return new VolumeHandle(this, now);
    }

    /// <summary>Volume fsyncs run for FLUSH requests (fewer than the requests: concurrent ones share one).</summary>
    public long VolumeFsyncs => _flushes.Flushes;

    public long Size => (long)_volume.Pages * PageSize;

    /// <summary>
    /// The volume's fsync covers every page that is dirty in it, and a page write is acknowledged only once the
    /// flusher knows the page: a flush on any connection covers writes completed on all of them.
    /// </summary>
    public bool FlushCoversAllConnections => true;

    public VolumeConfig Volume => _volume;

    public async Task<byte[]> ReadAsync(long offset, int length, CancellationToken ct)
    {
        var (first, last) = Pages(offset, length);
        if (first == last)
        {
            return await Guard(() => _grains.Page(_volume.Id, first).Read((int)(offset - (long)first * PageSize), length));
        }
        byte[] result = new byte[length];
        await ForEachPage(offset, length, async (page, inPage, at, count) =>
        {
            byte[] part = await _grains.Page(_volume.Id, page).Read(inPage, count);
            part.CopyTo(result.AsSpan(at));
        });
        return result;
    }

    public async Task WriteAsync(long offset, byte[] data, bool fua, CancellationToken ct)
    {
        var (first, last) = Pages(offset, data.Length);
        if (first == last)
        {
            await Guard(() => WritePage(first, (int)(offset - (long)first * PageSize), data));
        }
        else
        {
            await ForEachPage(offset, data.Length, (page, inPage, at, count) =>
                WritePage(page, inPage, data.AsSpan(at, count).ToArray()));
        }
        _flushes.WriteCompleted();
        if (fua)
        {
            await Sync(first, last - first + 1);
        }
    }

    public async Task ZeroAsync(long offset, long length, bool fua, CancellationToken ct)
    {
        byte[] zeroPage = new byte[PageSize]; // never changed: a page copies what it is given
        await ForEachPage(offset, length, (page, inPage, at, count) =>
            WritePage(page, inPage, count == PageSize ? zeroPage : new byte[count]));
        _flushes.WriteCompleted();
        if (fua)
        {
            var (first, last) = Pages(offset, length);
            await Sync(first, last - first + 1);
        }
    }

    /// <summary>
    /// The volume's fsync, group-committed: a FLUSH joins the fsync under way if that started after every write
    /// completed before the FLUSH arrived, else shares the next one with every FLUSH that arrives meanwhile.
    /// </summary>
    public Task FlushAsync(CancellationToken ct) => _flushes.FlushAsync();

    private async Task WritePage(int page, int offset, byte[] data)
    {
        WriteResult r = await _grains.Page(_volume.Id, page).Write(offset, data, wait: true);
        if (r.Status != WriteStatus.Ok)
        {
            throw new BlockDeviceException(NbdError.Io, $"page {page} of {_volume.Id} refused a write ({r.Status})");
        }
    }

    /// <summary>
    /// The fsync of a range, told of the volume's writeback errors since the last the device learnt of (into
    /// <see cref="Errors"/>, where each handle finds the ones it was not told of). Poisoned or pending pages fail it
    /// for every caller; errors alone fail only the handles they are news to.
    /// </summary>
    private async Task Sync(int first, int count)
    {
        FsyncResult r = await Guard(() => _grains.Flusher(_volume.Id).Fsync(first, count, Errors.Seen));
        Errors.Learn(r);
        if (r.ReportsPoison || r.PendingPages is { Length: > 0 })
        {
            throw new BlockDeviceException(NbdError.Io, $"fsync of {_volume.Id} pages {first}..{first + count - 1}: {r.Error}");
        }
    }

    private static (int First, int Last) Pages(long offset, long length) =>
        ((int)(offset / PageSize), (int)((offset + length - 1) / PageSize));

    /// <summary>Runs <paramref name="action"/>(page, offset in page, offset in request, bytes) for each page of a range, in parallel batches.</summary>
    private static async Task ForEachPage(long offset, long length, Func<int, int, int, int, Task> action)
    {
        var batch = new List<Task>(MaxParallelPages);
        long end = offset + length;
        for (long at = offset; at < end;)
        {
            int page = (int)(at / PageSize);
            int inPage = (int)(at % PageSize);
            int count = (int)Math.Min(PageSize - inPage, end - at);
            batch.Add(action(page, inPage, (int)(at - offset), count));
            at += count;
            if (batch.Count == MaxParallelPages)
            {
                await Guard(() => Task.WhenAll(batch));
                batch.Clear();
            }
        }
        await Guard(() => Task.WhenAll(batch));
    }

    /// <summary>Storage errors become device errors: an integrity failure is EIO, a range the volume refuses EINVAL.</summary>
    private static async Task Guard(Func<Task> call)
    {
        try
        {
            await call();
        }
        catch (StorageException e)
        {
            throw Map(e);
        }
    }

    private static async Task<T> Guard<T>(Func<Task<T>> call)
    {
        try
        {
            return await call();
        }
        catch (StorageException e)
        {
            throw Map(e);
        }
    }

    private static BlockDeviceException Map(StorageException e) => new(
        e.Error is StorageError.OutOfRange or StorageError.BufferTooLarge or StorageError.EmptyBuffer ? NbdError.Invalid : NbdError.Io,
        e.Message, e);
}

/// <summary>
/// The volumes of a cluster config as exports: each volume by its id, and its policy variants
/// (<c>ID-stable</c>, <c>ID-bounce</c>, <c>ID-unstable</c>: the same geometry with that policy, volumes of their own).
/// A volume is created (idempotently) when an export of it is first opened.
/// </summary>
public sealed class VolumeCatalog : IExportCatalog
{
    private readonly IGrainFactory _grains;
    private readonly Dictionary<string, VolumeConfig> _volumes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Task<VolumeDevice>> _open = new(StringComparer.Ordinal);

    public VolumeCatalog(IGrainFactory grains, IEnumerable<VolumeConfig> volumes)
    {
        _grains = grains;
        foreach (VolumeConfig v in volumes)
        {
            _volumes[v.Id] = v;
            foreach (WritebackPolicy policy in Enum.GetValues<WritebackPolicy>())
            {
                string id = $"{v.Id}-{policy.ToString().ToLowerInvariant()}";
                _volumes.TryAdd(id, v with { Id = id, Policy = policy });
            }
        }
        Names = [.. _volumes.Keys];
    }

    public IReadOnlyList<string> Names { get; }

    public async Task<IBlockDevice?> OpenAsync(string name, CancellationToken ct) =>
        await DeviceAsync(name) is VolumeDevice device ? await device.OpenAsync() : null;

    /// <summary>
    /// The shared device of export <paramref name="name"/> (created, and its volume, on first use), without opening a
    /// handle: no call reaches the volume's flusher, so nothing activates it from here (a client that only wants the
    /// geometry must not decide where the flusher goes).
    /// </summary>
    public async Task<VolumeDevice?> DeviceAsync(string name)
    {
        if (!_volumes.TryGetValue(name, out VolumeConfig? config))
        {
            return null;
        }
        Task<VolumeDevice> open;
        lock (_open)
        {
            if (!_open.TryGetValue(name, out open!) || open.IsFaulted || open.IsCanceled)
            {
                _open[name] = open = Create(config);
            }
        }
        return await open;
    }

    private async Task<VolumeDevice> Create(VolumeConfig config)
    {
        await _grains.Volume(config.Id).Create(config);
        return new VolumeDevice(_grains, config);
    }
}

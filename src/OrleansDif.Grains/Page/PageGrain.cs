using System.Diagnostics;
using Microsoft.Extensions.Logging;
using OrleansDif.Protection;

namespace OrleansDif.Grains;

/// <summary>
/// One 4 KiB page of the page cache. Holds the content, the state Clean / Dirty / Writeback, a version bumped
/// on every change, the writable mappings and the guard tags cached at copy-in. Under the stable policy a
/// write to a page under writeback is refused or held until writeback ends; the calls that end writeback
/// interleave with held writes (the grain is reentrant; every state change is a synchronous block).
/// </summary>
[Reentrant]
[GrainType(TypeName)]
public sealed class PageGrain(
    ILogger<PageGrain> logger,
    Microsoft.Extensions.Options.IOptions<StorageOptions> options,
    [PersistentState("intent", FileGrainStorage.Name)] IPersistentState<PageIntentState> intent) : Grain, IPageGrain
{
    private const int PageSize = VolumeConfig.PageSize;

    /// <summary>The grain type of pages (the flusher looks up the active ones by it).</summary>
    public const string TypeName = "difpage";

    private string _volume = "";
    private int _page;
    private VolumeConfig _config = null!;
    private IWritebackGrain _flusher = null!;
    private IDiskGrain _disk = null!;
    private long _lba;
    private Task? _loading;

    private byte[] _content = [];
    private ushort[] _tags = [];
    private ulong _validTags;               // bit s set: _tags[s] is the CRC of sector s as it is now
    private PageState _state = PageState.Clean;
    private long _version;
    private long _durableVersion;

    private Guid _writebackId;
    private long _writebackVersion;
    private IGrainTimer? _lease;
    private TaskCompletionSource? _writebackEnded;
    private IGrainTimer? _keepAlive;
    private int _heldWriters;
    private Task _registration = Task.CompletedTask;   // the flusher being told that this page is dirty
    private bool _poisoned;                             // content not to be trusted: memory corrupt, or unreadable on disk
    private string _poisonReason = "";
    private bool _poisonedAtLoad;                       // the stored copy failed a check: read it again next time
    private ProtectionFailure? _poisonFailure;
    private long _epoch;                                // this activation's epoch (from the disk): versions are epoch:count
    private long _count;                                // writes of this activation
    private long _loadedVersion;                        // the version the page had on its disk when it loaded
    private PageIntentState? _staleIntent;              // the write intent of an earlier activation, until the flusher resolved it
    private long _dirtyGen;                             // registrations with the flusher, numbered
    private long _writtenBoot;                          // the disk activation that took the last written version
    private bool _registeredSinceBegin;                 // a write under writeback told the flusher already
    private Task _intentWrite = Task.CompletedTask;
    private int _intentCommits;                         // not yet reported to the flusher

    private readonly Dictionary<long, Mapping> _mappings = [];
    private long _nextMapping = 1;
    private readonly List<(long Version, TaskCompletionSource<bool> Done)> _durableWaiters = [];

    private sealed class Mapping(bool writable)
    {
        public bool Writable { get; } = writable;
        public bool Revoked { get; set; }
    }

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        (_volume, _page) = GrainHelpers.ParseKey(this.GetPrimaryKeyString());
        return Task.CompletedTask;
    }

    // ------------------------------------------------------------------ page-cache operations

    public async Task<WriteResult> Write(int offset, byte[] data, bool wait)
    {
        await EnsureLoaded();
        CheckRange(offset, data);
        bool wholePage = offset == 0 && data.Length == PageSize;
        if (_poisoned && !wholePage)
        {
            throw PoisonedError("a partial write");
        }
        var (stallMs, refused) = await WaitForStable(wait);
        if (refused)
        {
            return new WriteResult(WriteStatus.UnderWriteback, _version, 0, false);
        }
        if (_poisoned && !wholePage)
        {
            throw PoisonedError("a partial write");
        }
        bool wasPoisoned = _poisoned;
        _poisonedAtLoad = false;
        _poisoned = false; // a whole-page write replaces the corrupt content and every tag with it
        int sectorSize = _config.SectorSize;
        if (!wholePage)
        {
            // A write that covers part of a sector merges with the rest of it: check that rest against its cached
            // tag first, or corruption there would be folded into a fresh, valid tag.
            CheckCachedSectors(offset, 1);
            CheckCachedSectors(offset + data.Length - 1, 1);
            if (_poisoned)
            {
                throw PoisonedError("a partial write");
            }
        }
        if (_config.TagsAtCopyIn)
        {
            Range touched = PageCopyIn.CopyIn(data, _content, offset, sectorSize, _tags);
            for (int s = touched.Start.Value; s < touched.End.Value; s++)
            {
                _validTags |= 1UL << s;
            }
        }
        else
        {
            data.CopyTo(_content, offset);
            for (int s = offset / sectorSize; s <= (offset + data.Length - 1) / sectorSize; s++)
            {
                _validTags &= ~(1UL << s);
            }
        }
        long version = NextVersion();
        DifMetrics.Writes.Add(1, new KeyValuePair<string, object?>("kind", "write"));
        await (wasPoisoned && _state == PageState.Dirty ? Register() : MarkDirty()); // a poisoned page was dropped by the flusher
        return new WriteResult(WriteStatus.Ok, version, stallMs, false, _epoch, _loadedVersion);
    }

    public async Task<byte[]> Read(int offset, int length)
    {
        await EnsureLoaded();
        if (length <= 0)
        {
            throw new StorageException(StorageError.EmptyBuffer, $"read of {length} bytes");
        }
        if (offset < 0 || offset > PageSize || length > PageSize - offset)
        {
            throw new StorageException(StorageError.OutOfRange, $"read of {length} bytes at offset {offset} is outside the {PageSize}-byte page");
        }
        CheckCachedSectors(offset, length);
        if (_poisoned)
        {
            throw PoisonedError("a read");
        }
        return _content.AsSpan(offset, length).ToArray();
    }

    public async Task<long> Map(bool writable)
    {
        await EnsureLoaded();
        long id = _nextMapping++;
        // A writable mapping made while the page is under stable writeback starts revoked: its first store faults.
        _mappings[id] = new Mapping(writable) { Revoked = writable && IsStableWriteback };
        return id;
    }

    public async Task<WriteResult> Store(long mapping, int offset, byte[] data, bool wait)
    {
        await EnsureLoaded();
        Mapping map = GetMapping(mapping);
        if (!map.Writable)
        {
            throw new StorageException(StorageError.ReadOnlyMapping, $"mapping {mapping} of page {_page} is read-only");
        }
        CheckRange(offset, data);
        if (_poisoned)
        {
            throw PoisonedError("a store");
        }
        bool faulted = false;
        double stallMs = 0;
        if (map.Revoked)
        {
            // page_mkwrite: wait for (or be refused during) writeback, then grant the mapping again.
            var (stall, refused) = await WaitForStable(wait);
            if (refused)
            {
                return new WriteResult(WriteStatus.UnderWriteback, _version, 0, true);
            }
            stallMs = stall;
            if (!_mappings.ContainsKey(mapping))
            {
                throw new StorageException(StorageError.UnknownMapping, $"mapping {mapping} of page {_page} was unmapped while it faulted");
            }
            map.Revoked = false;
            faulted = true;
            if (_poisoned)
            {
                throw PoisonedError("a store");
            }
        }
        data.CopyTo(_content, offset);
        _validTags = 0; // a store through a mapping computes no CRC: every cached tag is stale
        long version = NextVersion();
        DifMetrics.Writes.Add(1, new KeyValuePair<string, object?>("kind", "store"));
        await MarkDirty();
        return new WriteResult(WriteStatus.Ok, version, stallMs, faulted, _epoch, _loadedVersion);
    }

    public async Task Unmap(long mapping)
    {
        await EnsureLoaded();
        GetMapping(mapping);
        _mappings.Remove(mapping);
    }

    public async Task<PageInfo> GetInfo()
    {
        await EnsureLoaded();
        return new PageInfo(_state, _version, _durableVersion, System.Numerics.BitOperations.PopCount(_validTags),
            _mappings.Values.Count(m => m.Writable && !m.Revoked), _mappings.Values.Count(m => m.Revoked),
            _heldWriters, RuntimeIdentity, _poisoned, _epoch, _loadedVersion, _staleIntent is not null,
            _staleIntent?.Epoch ?? 0, _staleIntent?.Flusher ?? 0, _writtenBoot);
    }

    public async Task InjectBitflip(int bit)
    {
        await EnsureLoaded();
        if (bit < 0 || bit >= PageSize * 8)
        {
            throw new StorageException(StorageError.OutOfRange, $"bit {bit} is outside the {PageSize}-byte page");
        }
        options.Value.RequireFaultInjection(FaultKind.PageBitflip);
        _content[bit / 8] ^= (byte)(1 << (bit % 8)); // the cached guard tags are left as they were
    }

    public async Task Deactivate()
    {
        await EnsureLoaded();
        if (_state == PageState.Dirty)
        {
            // Never let a dirty page go: write it back through the flusher first. (A page under writeback goes
            // as it is: its deactivation hands its content to the flusher, which owns the writeback under way.)
            FsyncResult r = await _flusher.Fsync(_page, 1);
            if (!r.Durable)
            {
                throw new StorageException(StorageError.IntegrityError, $"page {_page} could not be written back before deactivation: {r.Error}");
            }
        }
        this.DeactivateOnIdle();
    }

    public async Task LossReported()
    {
        await EnsureLoaded();
        if (_staleIntent is null)
        {
            return;
        }
        _staleIntent = null;
        if (intent.State.Epoch != _epoch && intent.State.Epoch != 0)
        {
            // The file still holds the earlier activation's intent (this one has not written yet): resolved, clear it.
            await ClearIntent();
        }
    }

    public async Task<bool> Redirty(long version)
    {
        await EnsureLoaded();
        if (PageVersion.EpochOf(version) != _epoch || _poisoned)
        {
            return false; // written by an earlier activation: the flusher judges the loss
        }
        _durableVersion = Math.Min(_durableVersion, _loadedVersion);
        if (_state == PageState.Clean)
        {
            await MarkDirty();
        }
        return true;
    }

    // ------------------------------------------------------------------ writeback protocol

    public async Task<WritebackSnapshot> BeginWriteback()
    {
        await EnsureLoaded();
        if (_state == PageState.Writeback)
        {
            return new WritebackSnapshot(BeginStatus.Busy, Guid.Empty, _version, [], [], 0, false);
        }
        if (_state == PageState.Clean)
        {
            return new WritebackSnapshot(BeginStatus.NotDirty, Guid.Empty, _version, [], [], 0, false);
        }
        if (_poisoned)
        {
            return new WritebackSnapshot(BeginStatus.Poisoned, Guid.Empty, _version, [], [], 0, false);
        }
        _state = PageState.Writeback;
        _writebackId = Guid.NewGuid();
        _writebackVersion = _version;
        _registeredSinceBegin = false;
        _writebackEnded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (_config.Policy == WritebackPolicy.Stable)
        {
            foreach (Mapping m in _mappings.Values)
            {
                if (m.Writable)
                {
                    m.Revoked = true;
                }
            }
        }
        Guid id = _writebackId;
        _lease = this.RegisterGrainTimer(() => LeaseExpired(id), new GrainTimerCreationOptions
        {
            DueTime = TimeSpan.FromMilliseconds(_config.LeaseMs),
            Period = Timeout.InfiniteTimeSpan,
            Interleave = true,
            KeepAlive = true,
        });
        // Stable: the page cannot change until writeback ends, so writeback may read the page itself.
        // Bounce: a private copy; writers go on with the live page. Unstable: the live page, read again later.
        bool copy = _config.Policy == WritebackPolicy.Bounce;
        byte[] content = copy ? (byte[])_content.Clone() : _content;
        return new WritebackSnapshot(BeginStatus.Started, id, _writebackVersion, content, (ushort[])_tags.Clone(), _validTags, copy, _dirtyGen);
    }

    public Task<byte[]> ReadForTransfer(Guid writebackId)
    {
        if (_state != PageState.Writeback || writebackId != _writebackId)
        {
            throw new StorageException(StorageError.OutOfRange, $"writeback {writebackId} of page {_page} is not current");
        }
        return Task.FromResult(_content);
    }

    public Task<EndStatus> EndWriteback(Guid writebackId, bool success, long diskBoot = 0)
    {
        if (!IsCurrent(writebackId))
        {
            return Task.FromResult(EndStatus.StaleWriteback);
        }
        if (success)
        {
            // In the disk's write cache: written back. Durable once the flusher has flushed that disk (fsync does).
            _durableVersion = Math.Max(_durableVersion, _writebackVersion);
            _writtenBoot = diskBoot;
            WakeDurableWaiters();
        }
        else
        {
            CheckMemory();
        }
        bool clean = success && _version == _writebackVersion;
        FinishWriteback(clean ? PageState.Clean : PageState.Dirty);
        return Task.FromResult(clean ? EndStatus.Ended : EndStatus.EndedDirty);
    }

    public async Task<byte[]> ReadDurable()
    {
        await EnsureLoaded();
        DiskPageRead stored = await _disk.LoadPage(_lba, claim: false);
        if (stored.Failure is not null)
        {
            throw new StorageException(StorageError.IntegrityError, stored.Error ?? "the stored page failed a check", stored.Failure);
        }
        CheckVersions(stored.Pi, stored.HeldVersion);
        return stored.Data;
    }

    public async Task<DurableStatus> CheckDurable(long version, long activation)
    {
        await EnsureLoaded();
        // Written by an earlier activation: on the disk only if this one found it there when it loaded, else lost.
        // Written by this one: written back when the writeback ended, else not yet.
        bool earlier = activation != _epoch;
        if ((earlier ? _loadedVersion : _durableVersion) < version)
        {
            return earlier ? DurableStatus.Lost : DurableStatus.NotYet;
        }
        // Durable only once the medium has it, not just the disk's cache; the disk says, not the flusher that wrote
        // it (after a silo loss that may be another activation than the one asking). Not yet: the fsync flushes and
        // asks again.
        return await _disk.FlushedVersion(_lba) >= version ? DurableStatus.Durable : DurableStatus.NotYet;
    }

    public async Task<bool> WaitDurable(long version, TimeSpan timeout)
    {
        await EnsureLoaded();
        if (_durableVersion >= version)
        {
            return true;
        }
        var done = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        _durableWaiters.Add((version, done));
        Task finished = await Task.WhenAny(done.Task, Task.Delay(timeout));
        _durableWaiters.RemoveAll(w => w.Done == done);
        return finished == done.Task;
    }

    // ------------------------------------------------------------------ internals

    private bool IsCurrent(Guid writebackId) =>
        _state == PageState.Writeback && writebackId == _writebackId && writebackId != Guid.Empty;

    /// <summary>
    /// After a disk rejected this page: does the content still match the guard tags cached at copy-in? A sector
    /// that does not was changed behind the page cache's back (memory corruption): the page is poisoned, never
    /// written back, and reported instead of retried for ever.
    /// </summary>
    private void CheckMemory()
    {
        int size = _config.SectorSize;
        for (int s = 0; s < _tags.Length; s++)
        {
            if ((_validTags & (1UL << s)) != 0 && Crc16T10Dif.Compute(_content.AsSpan(s * size, size)) != _tags[s])
            {
                if (!_poisoned)
                {
                    _poisoned = true;
                    _poisonReason = "its memory no longer matches the guard tags cached at copy-in";
                    _poisonFailure = new ProtectionFailure(_lba + s, CheckKind.Guard, _tags[s], Crc16T10Dif.Compute(_content.AsSpan(s * size, size)));
                    DifMetrics.PoisonedPages.Add(1);
                    logger.LogError("{Volume} page {Page} is poisoned: sector {Sector} no longer matches the guard tag cached when it was written (memory corruption)",
                        _volume, _page, s);
                }
                return;
            }
        }
    }

    /// <summary>
    /// A read checks the sectors it returns against the guard tags cached for them (one CRC per 512 bytes read):
    /// memory corruption of a page, dirty or clean, is reported instead of returned as good data.
    /// </summary>
    private void CheckCachedSectors(int offset, int length)
    {
        int size = _config.SectorSize;
        for (int s = offset / size; s <= (offset + length - 1) / size; s++)
        {
            if ((_validTags & (1UL << s)) != 0 && Crc16T10Dif.Compute(_content.AsSpan(s * size, size)) != _tags[s])
            {
                CheckMemory();
                return;
            }
        }
    }

    private StorageException PoisonedError(string what) => new(StorageError.IntegrityError,
        $"{what} of {_volume} page {_page} refused: the page is poisoned ({_poisonReason}); only a whole-page write replaces it",
        _poisonFailure);

    /// <summary>The next version of this activation: its epoch, and one more write.</summary>
    private long NextVersion()
    {
        if (_count >= PageVersion.MaxCount)
        {
            throw new StorageException(StorageError.OutOfRange,
                $"{_volume} page {_page}: {PageVersion.MaxCount} writes in one activation; deactivate the page to start a new epoch");
        }
        _count++;
        return _version = PageVersion.First(_epoch) + _count;
    }

    /// <summary>
    /// Write intent (as an md write-intent bitmap marks a region): before the first write of this activation is
    /// acknowledged, the page's persistent state names this activation and the flusher that knows its dirty state.
    /// Written once per activation (again only if the flusher changes), never per write: a page that comes up and
    /// finds an earlier activation's intent asks the flusher whether that activation died holding acknowledged
    /// writes, and the flusher that was told of them can say exactly.
    /// </summary>
    private Task EnsureIntent(long flusher) => intent.State.Epoch == _epoch && intent.State.Flusher == flusher
        ? _intentWrite
        : SetIntent(_epoch, flusher);

    /// <summary>Clears the intent.</summary>
    private Task ClearIntent() => SetIntent(0, 0);

    /// <summary>
    /// Makes the persistent intent (<paramref name="epoch"/>, <paramref name="flusher"/>) after every intent write
    /// under way (one writer of the state at a time), writing only if it is not that already when its turn comes.
    /// </summary>
    private Task SetIntent(long epoch, long flusher)
    {
        Task previous = _intentWrite;
        return _intentWrite = After(previous);

        async Task After(Task before)
        {
            try
            {
                await before;
            }
            catch (Exception)
            {
                // that write failed on its own; this one is tried regardless
            }
            if (intent.State.Epoch != epoch || intent.State.Flusher != flusher)
            {
                await WriteIntent(epoch, flusher);
            }
        }
    }

    private async Task WriteIntent(long epoch, long flusher)
    {
        (long oldEpoch, long oldFlusher) = (intent.State.Epoch, intent.State.Flusher);
        intent.State.Epoch = epoch;
        intent.State.Flusher = flusher;
        try
        {
            await intent.WriteStateAsync();
            DifMetrics.MetadataCommits.Add(1);
            _intentCommits++;
        }
        catch
        {
            (intent.State.Epoch, intent.State.Flusher) = (oldEpoch, oldFlusher);
            try
            {
                await intent.ReadStateAsync();
            }
            catch (Exception e)
            {
                logger.LogWarning(e, "{Volume} page {Page}: its write intent could not be read back", _volume, _page);
            }
            throw;
        }
    }

    /// <summary>
    /// With version tags, every sector of the page must carry the tag of the version the disk holds for the page. An
    /// older one, or a sector never written although a version is held, is a lost (or misdirected) write; sectors
    /// that disagree are a write torn at a sector boundary.
    /// </summary>
    private void CheckVersions(byte[] pi, long held)
    {
        if (!_config.VersionTags)
        {
            return;
        }
        var scheme = GrainHelpers.Scheme(_config);
        ushort expected = VolumeConfig.VersionTag(held);
        for (int s = 0; s < _config.SectorsPerPage; s++)
        {
            PiTuple tuple = PiTuple.Read(pi.AsSpan(s * PiTuple.Size, PiTuple.Size));
            bool escaped = scheme.IsEscaped(tuple);
            if (held == 0 ? escaped : !escaped && tuple.AppTag == expected)
            {
                continue;
            }
            if (held == 0)
            {
                continue; // written outside the page protocol (raw disk commands): nothing to compare with
            }
            DifMetrics.LostWrites.Add(1);
            string what = escaped || s == 0 ? "a lost write" : "a write torn at a sector boundary";
            logger.LogError("{Volume} page {Page}: {What} (sector {Sector} carries tag 0x{Tag:X4}, the disk holds version {Version} with tag 0x{Expected:X4})",
                _volume, _page, what, s, tuple.AppTag, held, expected);
            throw new StorageException(StorageError.IntegrityError,
                $"{_volume} page {_page}: {what}: LBA {_lba + s} carries version tag 0x{tuple.AppTag:X4}, the disk holds version {held} with tag 0x{expected:X4}",
                new ProtectionFailure(_lba + s, CheckKind.Version, expected, tuple.AppTag));
        }
    }

    private bool IsStableWriteback => _state == PageState.Writeback && _config.Policy == WritebackPolicy.Stable;

    /// <summary>
    /// Stable policy: while the page is under writeback a writer is refused (wait false, like IOCB_NOWAIT's
    /// -EAGAIN) or held until writeback ends (wait_for_stable_page). Other policies never wait.
    /// </summary>
    private async Task<(double StallMs, bool Refused)> WaitForStable(bool wait)
    {
        if (!IsStableWriteback)
        {
            return (0, false);
        }
        if (!wait)
        {
            DifMetrics.Refusals.Add(1);
            return (0, true);
        }
        long start = Stopwatch.GetTimestamp();
        _heldWriters++;
        try
        {
            await StepHooks.PassAsync(_volume, StepHooks.WriteHeld);
            while (IsStableWriteback)
            {
                await _writebackEnded!.Task;
            }
        }
        finally
        {
            _heldWriters--;
        }
        double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        DifMetrics.StallMs.Record(ms);
        return (ms, false);
    }

    /// <summary>
    /// Clean → Dirty, and the flusher told. Every write that finds the page dirty waits for that registration
    /// too, so no write is acknowledged before the flusher knows the page (an fsync could miss it otherwise);
    /// a registration that failed is tried again by the next write.
    /// </summary>
    private Task MarkDirty()
    {
        if (_state == PageState.Writeback && !_registeredSinceBegin)
        {
            // Written under writeback (bounce, unstable, a lease that expired): the snapshot does not hold this
            // write; the flusher must know it is owed, before it is acknowledged, to judge a loss exactly.
            _registeredSinceBegin = true;
            return Register();
        }
        if (_state == PageState.Clean)
        {
            _state = PageState.Dirty;
            DifMetrics.DirtyPages.Add(1);
            // A dirty page keeps its activation: idle collection never takes it while it is not clean. The timer
            // also tells the flusher again, in case the flusher's activation was lost with its silo.
            _keepAlive ??= this.RegisterGrainTimer(() => _state == PageState.Dirty ? Register() : Task.CompletedTask, new GrainTimerCreationOptions
            {
                DueTime = TimeSpan.FromMinutes(1),
                Period = TimeSpan.FromMinutes(1),
                Interleave = true,
                KeepAlive = true,
            });
            return Register();
        }
        if (_registration.IsFaulted && _state == PageState.Dirty)
        {
            return Register();
        }
        return _registration;
    }

    private Task Register()
    {
        _dirtyGen++;
        return _registration = RegisterAsync(_version, _dirtyGen);
    }

    private async Task RegisterAsync(long version, long generation)
    {
        int commits = _intentCommits;
        _intentCommits = 0;
        long flusher = await _flusher.MarkDirty(_page, version, generation, commits);
        await EnsureIntent(flusher);
    }

    private void FinishWriteback(PageState next)
    {
        _lease?.Dispose();
        _lease = null;
        _writebackId = Guid.Empty;
        _state = next;
        if (next == PageState.Clean)
        {
            DifMetrics.DirtyPages.Add(-1);
            _keepAlive?.Dispose();
            _keepAlive = null;
        }
        TaskCompletionSource? ended = _writebackEnded;
        _writebackEnded = null;
        ended?.TrySetResult();
    }

    private async Task LeaseExpired(Guid writebackId)
    {
        if (_state != PageState.Writeback || _writebackId != writebackId)
        {
            return;
        }
        logger.LogWarning("Writeback {Id} of {Volume} page {Page} never ended; the lease expired and the page is dirty again",
            writebackId, _volume, _page);
        DifMetrics.LeaseExpiries.Add(1);
        if (_config.Policy != WritebackPolicy.Bounce)
        {
            // Copy on expiry: the expired writeback may still be sending this very buffer (no copy was made for it),
            // so the page never changes it again; writes go to a private copy from now on.
            _content = (byte[])_content.Clone();
        }
        FinishWriteback(PageState.Dirty);
        Task registered = Register();
        await StepHooks.PassAsync(_volume, StepHooks.LeaseExpired);
        await registered;
    }

    private void WakeDurableWaiters()
    {
        foreach (var (version, done) in _durableWaiters)
        {
            if (_durableVersion >= version)
            {
                done.TrySetResult(true);
            }
        }
    }

    private Mapping GetMapping(long mapping) => _mappings.TryGetValue(mapping, out Mapping? map)
        ? map
        : throw new StorageException(StorageError.UnknownMapping, $"page {_page} has no mapping {mapping}");

    private static void CheckRange(int offset, byte[]? data)
    {
        if (data is null || data.Length == 0)
        {
            throw new StorageException(StorageError.EmptyBuffer, "write of 0 bytes");
        }
        if (data.Length > PageSize)
        {
            throw new StorageException(StorageError.BufferTooLarge, $"write of {data.Length} bytes is larger than a {PageSize}-byte page");
        }
        if (offset < 0 || offset > PageSize - data.Length)
        {
            throw new StorageException(StorageError.OutOfRange, $"write of {data.Length} bytes at offset {offset} is outside the {PageSize}-byte page");
        }
    }

    private Task EnsureLoaded()
    {
        // A clean page whose stored copy failed a check reads it again: a repaired medium makes it good.
        bool retry = _poisonedAtLoad && _state == PageState.Clean && _loading is { IsCompleted: true };
        if (_loading is { IsCompletedSuccessfully: true } && !retry)
        {
            return Task.CompletedTask;
        }
        if (_loading is null || _loading.IsFaulted || _loading.IsCanceled || retry)
        {
            _loading = Load();
        }
        return _loading;
    }

    /// <summary>
    /// Loads the page from its disk and claims it there for a new epoch (no command of an earlier activation lands
    /// after this); the disk verifies PI, so the stored guards become the cached tags.
    /// </summary>
    private async Task Load()
    {
        VolumeConfig config = await GrainFactory.Volume(_volume).GetConfig();
        if (_page < 0 || _page >= config.Pages)
        {
            throw new StorageException(StorageError.OutOfRange, $"page {_page} is outside volume '{_volume}' of {config.Pages} pages");
        }
        var (disk, lba) = config.Locate(_page);
        IDiskGrain diskGrain = GrainFactory.Disk(_volume, disk);
        _config = config;
        _lba = lba;
        _disk = diskGrain;
        _flusher = GrainFactory.Flusher(_volume);
        DiskPageRead stored = await diskGrain.LoadPage(lba, claim: true);
        _epoch = stored.Epoch;
        try
        {
            if (stored.Failure is not null)
            {
                throw new StorageException(StorageError.IntegrityError, stored.Error ?? "the stored page failed a check", stored.Failure);
            }
            CheckVersions(stored.Pi, stored.HeldVersion);
        }
        catch (StorageException e) when (e.Error == StorageError.IntegrityError)
        {
            // The stored page failed a check: never served as good data. The page comes up poisoned (reads fail)
            // and a whole-page write, which needs nothing of the old content, makes it good again.
            _content = new byte[PageSize];
            _tags = new ushort[config.SectorsPerPage];
            _validTags = 0;
            _poisoned = true;
            _poisonedAtLoad = true;
            _poisonReason = "its stored copy failed a check when it was read: " + e.Message;
            _poisonFailure = e.Failure;
            await Loaded(stored.HeldVersion);
            return;
        }
        var scheme = GrainHelpers.Scheme(config);
        ushort[] tags = new ushort[config.SectorsPerPage];
        for (int s = 0; s < tags.Length; s++)
        {
            PiTuple tuple = PiTuple.Read(stored.Pi.AsSpan(s * PiTuple.Size, PiTuple.Size));
            tags[s] = scheme.IsEscaped(tuple)
                ? Crc16T10Dif.Compute(stored.Data.AsSpan(s * config.SectorSize, config.SectorSize))
                : tuple.Guard;
        }
        _poisoned = _poisonedAtLoad = false;
        _content = stored.Data;
        _tags = tags;
        _validTags = tags.Length == 64 ? ulong.MaxValue : (1UL << tags.Length) - 1;
        await Loaded(stored.HeldVersion);
    }

    /// <summary>
    /// After a load: an intent left by an earlier activation means that activation may have died (killed silo)
    /// holding acknowledged writes that never reached the disk. The flusher that activation told of its writes
    /// judges it (exactly: it knows what was owed and what landed); the page keeps the question open until an fsync
    /// has reported the answer.
    /// </summary>
    private async Task Loaded(long held)
    {
        _version = _durableVersion = _loadedVersion = held;
        _count = 0;
        _staleIntent = intent.State.Epoch != 0 && intent.State.Epoch != _epoch
            ? new PageIntentState { Epoch = intent.State.Epoch, Flusher = intent.State.Flusher }
            : null;
        if (intent.State.CorruptionReason is string why)
        {
            // The intent was unreadable: whether an earlier activation died holding acknowledged writes cannot be
            // known, so it is asked as an intent no flusher can vouch for: the next fsync reports a possible loss.
            logger.LogError("{Volume} page {Page}: {Why}; the next fsync covering it reports its writes as possibly lost", _volume, _page, why);
            _staleIntent = new PageIntentState { Epoch = -1, Flusher = 0 };
            intent.State.CorruptionReason = null;
        }
        if (_staleIntent is not null)
        {
            DifMetrics.LostPages.Add(1);
            // Awaited, so that the next fsync judges this page: ReportLost only records the page (it waits for
            // nothing, not even the flusher's recovery, which may be asking this very page). Bounded: a flusher
            // whose silo is going away must not hold the load; the report then lands late, and a new flusher
            // finds the page by its intent all the same.
            Task report = ReportLostAsync();
            await Task.WhenAny(report, Task.Delay(TimeSpan.FromSeconds(2)));
        }
    }

    private async Task ReportLostAsync()
    {
        try
        {
            await _flusher.ReportLost(_page);
        }
        catch (Exception e)
        {
            logger.LogWarning(e, "{Volume} page {Page} could not report its earlier activation's intent to the flusher", _volume, _page);
        }
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        // Deactivation (silo shutdown and the like) never writes around the flusher: a dirty page, or one that
        // changed under writeback, hands its content to the flusher, which writes it (fenced by version: an older
        // writeback of it still in flight can never land after it) and flushes the disk. Once the page's writes are
        // durable its intent is cleared, so the next activation has nothing to ask about.
        _keepAlive?.Dispose();
        _lease?.Dispose();
        if (_loading is not { IsCompletedSuccessfully: true })
        {
            return;
        }
        if (_poisoned)
        {
            return; // never written back: the flusher reports it, and the intent stays for the next activation
        }
        try
        {
            // Dirty, or under writeback (changed or not: once this activation is gone the writeback's end reaches a
            // new one, refused as stale, and the command under way may yet be refused by the new activation's claim).
            bool evicted = false;
            if (_state != PageState.Clean)
            {
                var snapshot = new WritebackSnapshot(BeginStatus.Started, Guid.Empty, _version, _content, (ushort[])_tags.Clone(), _validTags, false, _dirtyGen);
                if (!await _flusher.Evict(_page, snapshot))
                {
                    logger.LogError("Dirty page {Volume}/{Page} could not be written at deactivation; its intent stays set", _volume, _page);
                    return;
                }
                _state = PageState.Clean;
                evicted = true;
                DifMetrics.DirtyPages.Add(-1);
                DifMetrics.EvictionWrites.Add(1);
                await StepHooks.PassAsync(_volume, StepHooks.PageEvicted);
            }
            if (intent.State.Epoch == _epoch && _staleIntent is null)
            {
                // This activation wrote: everything it wrote back must be on the medium before the intent goes (the
                // hand-over above flushed already).
                if (!evicted)
                {
                    await _disk.Flush();
                }
                await ClearIntent();
            }
            await StepHooks.PassAsync(_volume, StepHooks.PageDeactivated);
        }
        catch (Exception e)
        {
            logger.LogError(e, "Page {Volume}/{Page} could not be made durable at deactivation; its intent stays set", _volume, _page);
        }
    }
}

/// <summary>What a page keeps in persistent grain state: its write intent.</summary>
[GenerateSerializer]
public sealed class PageIntentState : IStateCorruption
{
    /// <summary>Set when the stored intent could not be read: the page cannot know what its last activation held.</summary>
    [Id(2)] public string? CorruptionReason { get; set; }

    /// <summary>The epoch of the activation that may hold acknowledged writes not yet durable (0: none).</summary>
    [Id(0)] public long Epoch { get; set; }

    /// <summary>The flusher activation told of that activation's dirty state.</summary>
    [Id(1)] public long Flusher { get; set; }
}

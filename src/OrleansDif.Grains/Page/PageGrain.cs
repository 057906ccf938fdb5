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
[PageCachePlacement]
[GrainType(TypeName)]
public sealed class PageGrain(
    ILogger<PageGrain> logger,
    Microsoft.Extensions.Options.IOptions<StorageOptions> options,
    AckTables acks,
    DirtyLogs dirtyLogs,
    [PersistentState("intent", FileGrainStorage.Name)] IPersistentState<PageIntentState> intent) : Grain, IPageGrain
{
    /// <summary>The grain type of pages (the flusher looks up the active ones by it).</summary>
    public const string TypeName = "difpage";

    private string _volume = "";
    private int _page;
    private VolumeConfig _config = null!;
    private IWritebackGrain _flusher = null!;
    private IDiskGrain _disk = null!;
    private long _lba;
    private Task? _loading;
    private PageMachine _machine = null!;               // every decision about the page's state is taken here

    private IGrainTimer? _lease;
    private TaskCompletionSource? _writebackEnded;
    private IGrainTimer? _keepAlive;
    private int _heldWriters;
    private Task _registration = Task.CompletedTask;   // the flusher being told that this page is dirty
    private PageIntentState? _staleIntent;              // the write intent of an earlier activation, until the flusher resolved it
    private long _staleLastAcked = -1;                  // what that activation acknowledged last (-1: nobody can say)
    private long _ackEntryAtLoad = -1;                  // the page's acknowledgement table entry when this activation loaded (-1: no table)
    private AckTable? _acks;                            // this volume's acknowledged versions, shared by the machine's silos
    private DirtyLog? _dirtyLog;                        // this volume's durable dirty periods (null: the volume keeps none)
    private Task _periodRecord = Task.CompletedTask;    // the dirty log making the period under way durable
    private long _stalePeriodStart = -1;                // the first version of the earlier activation's last dirty period (-1: nobody can say)
    private long _dirtyGen;                             // registrations with the flusher, numbered
    private readonly StateWriteChain _intentWrites = new();
    private int _intentCommits;                         // not yet reported to the flusher

    private readonly List<(long Version, TaskCompletionSource<bool> Done)> _durableWaiters = [];

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        (_volume, _page) = GrainHelpers.ParseKey(this.GetPrimaryKeyString());
        return Task.CompletedTask;
    }

    // ------------------------------------------------------------------ page-cache operations

    public async Task<WriteResult> Write(int offset, byte[] data, bool wait)
    {
        await EnsureLoaded();
        double stallMs = 0;
        DirtyEffect effect;
        while (_machine.Write(offset, data ?? [], out effect) == WriteOutcome.UnderWriteback)
        {
            if (!wait)
            {
                DifMetrics.Refusals.Add(1);
                return new WriteResult(WriteStatus.UnderWriteback, _machine.Version, 0, false);
            }
            stallMs += await HoldUntilWritebackEnds();
        }
        DifMetrics.Writes.Add(1, new KeyValuePair<string, object?>("kind", "write"));
        long version = _machine.Version;
        await ApplyAndLog(effect);
        _acks?.Record(_page, version); // acknowledged from here on
        return new WriteResult(WriteStatus.Ok, version, stallMs, false, _machine.Epoch, _machine.LoadedVersion);
    }

    public async Task<byte[]> Read(int offset, int length)
    {
        await EnsureLoaded();
        return _machine.Read(offset, length);
    }

    public async Task<long> Map(bool writable)
    {
        await EnsureLoaded();
        return _machine.Map(writable);
    }

    public async Task<WriteResult> Store(long mapping, int offset, byte[] data, bool wait)
    {
        await EnsureLoaded();
        double stallMs = 0;
        DirtyEffect effect;
        bool faulted;
        // page_mkwrite: a revoked mapping waits for (or is refused during) writeback, then is granted again.
        while (_machine.Store(mapping, offset, data ?? [], out effect, out faulted) == WriteOutcome.UnderWriteback)
        {
            if (!wait)
            {
                DifMetrics.Refusals.Add(1);
                return new WriteResult(WriteStatus.UnderWriteback, _machine.Version, 0, true);
            }
            stallMs += await HoldUntilWritebackEnds();
        }
        DifMetrics.Writes.Add(1, new KeyValuePair<string, object?>("kind", "store"));
        long version = _machine.Version;
        await ApplyAndLog(effect);
        _acks?.Record(_page, version); // acknowledged from here on
        return new WriteResult(WriteStatus.Ok, version, stallMs, faulted, _machine.Epoch, _machine.LoadedVersion);
    }

    public async Task Unmap(long mapping)
    {
        await EnsureLoaded();
        _machine.Unmap(mapping);
    }

    public async Task<PageInfo> GetInfo()
    {
        await EnsureLoaded();
        return Info();
    }

    private PageInfo Info()
    {
        PageMachine m = _machine;
        return new PageInfo(m.State, m.Version, m.DurableVersion, m.ValidTagSectors, m.WritableMappings, m.RevokedMappings,
            _heldWriters, RuntimeIdentity, m.Poisoned, m.Epoch, m.LoadedVersion, _staleIntent is not null,
            _staleIntent?.Epoch ?? 0, _staleIntent?.Flusher ?? 0, m.WrittenBoot, _staleIntent is null ? -1 : _staleLastAcked,
            _acks?.Id ?? 0, _ackEntryAtLoad, _staleIntent is null ? -1 : _stalePeriodStart);
    }

    public async Task InjectBitflip(int bit)
    {
        await EnsureLoaded();
        options.Value.RequireFaultInjection(FaultKind.PageBitflip);
        _machine.Bitflip(bit);
    }

    public async Task Deactivate()
    {
        await EnsureLoaded();
        if (_machine.State == PageState.Dirty)
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
        if (intent.State.Epoch != _machine.Epoch && intent.State.Epoch != 0)
        {
            // The file still holds the earlier activation's intent (this one has not written yet): resolved, clear it.
            await ClearIntent();
        }
    }

    public async Task<bool> Redirty(long version)
    {
        await EnsureLoaded();
        if (!_machine.Redirty(version, out DirtyEffect effect))
        {
            return false; // written by an earlier activation: the flusher judges the loss
        }
        await Apply(effect);
        return true;
    }

    // ------------------------------------------------------------------ writeback protocol

    public async Task<WritebackSnapshot> BeginWriteback()
    {
        await EnsureLoaded();
        WritebackSnapshot snapshot = _machine.StartWriteback(WritebackIds.Next(), _dirtyGen);
        if (snapshot.Status != BeginStatus.Started)
        {
            return snapshot;
        }
        _writebackEnded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Guid id = snapshot.WritebackId;
        snapshot = snapshot with { Info = Info() };
        _lease = this.RegisterGrainTimer(() => LeaseExpired(id), new GrainTimerCreationOptions
        {
            DueTime = TimeSpan.FromMilliseconds(_config.LeaseMs),
            Period = Timeout.InfiniteTimeSpan,
            Interleave = true,
            KeepAlive = true,
        });
        return snapshot;
    }

    public Task<byte[]> ReadForTransfer(Guid writebackId) => _machine is null
        ? throw new StorageException(StorageError.OutOfRange, $"writeback {writebackId} of page {_page} is not current")
        : Task.FromResult(_machine.ContentForTransfer(writebackId));

    public Task<EndStatus> EndWriteback(Guid writebackId, bool success, long diskBoot = 0, ulong[]? writtenTags = null)
    {
        if (_machine is null)
        {
            return Task.FromResult(EndStatus.StaleWriteback);
        }
        EndStatus status = _machine.EndWriteback(writebackId, success, diskBoot, writtenTags);
        if (status != EndStatus.StaleWriteback)
        {
            WritebackLeft();
            if (success)
            {
                WakeDurableWaiters();
            }
        }
        return Task.FromResult(status);
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
        bool earlier = activation != _machine.Epoch;
        if ((earlier ? _machine.LoadedVersion : _machine.DurableVersion) < version)
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
        if (_machine.DurableVersion >= version)
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

    /// <summary>
    /// Write intent (as an md write-intent bitmap marks a region): before the first write of this activation is
    /// acknowledged, the page's persistent state names this activation and the flusher that knows its dirty state.
    /// Written once per activation (again only if the flusher changes), never per write: a page that comes up and
    /// finds an earlier activation's intent asks the flusher whether that activation died holding acknowledged
    /// writes, and the flusher that was told of them can say exactly.
    /// </summary>
    private Task EnsureIntent(long flusher) => intent.State.Epoch == _machine.Epoch && intent.State.Flusher == flusher
        ? _intentWrites.Last
        : SetIntent(_machine.Epoch, flusher);

    /// <summary>Clears the intent.</summary>
    private Task ClearIntent() => SetIntent(0, 0);

    /// <summary>
    /// Makes the persistent intent (<paramref name="epoch"/>, <paramref name="flusher"/>) after every intent write
    /// under way (one writer of the state at a time), writing only if it is not that already when its turn comes.
    /// </summary>
    private Task SetIntent(long epoch, long flusher) => _intentWrites.Then(async () =>
    {
        if (intent.State.Epoch != epoch || intent.State.Flusher != flusher)
        {
            await WriteIntent(epoch, flusher);
        }
    });

    private async Task WriteIntent(long epoch, long flusher)
    {
        (long oldEpoch, long oldFlusher) = (intent.State.Epoch, intent.State.Flusher);
        (long oldTable, long oldLog) = (intent.State.AckTable, intent.State.DirtyLog);
        intent.State.Epoch = epoch;
        intent.State.Flusher = flusher;
        intent.State.AckTable = epoch == 0 ? 0 : _acks?.Id ?? 0;
        intent.State.DirtyLog = epoch == 0 ? 0 : _dirtyLog?.Id ?? 0;
        try
        {
            await intent.WriteStateAsync();
            DifMetrics.MetadataCommits.Add(1);
            _intentCommits++;
        }
        catch
        {
            (intent.State.Epoch, intent.State.Flusher, intent.State.AckTable, intent.State.DirtyLog) = (oldEpoch, oldFlusher, oldTable, oldLog);
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
        if (PageMachine.VersionMismatch(_config, _lba, pi, held, $"{_volume} page {_page}") is (ProtectionFailure failure, string message))
        {
            LostWriteFound(message);
            throw new StorageException(StorageError.IntegrityError, message, failure);
        }
    }

    private void LostWriteFound(string message)
    {
        DifMetrics.LostWrites.Add(1);
        logger.LogError("{Message}", message);
    }

    /// <summary>
    /// A writer the page's policy holds while the page is under writeback (wait_for_stable_page) waits here until
    /// that writeback ends, then tries its transition again (writeback may have started again meanwhile).
    /// </summary>
    private async Task<double> HoldUntilWritebackEnds()
    {
        long start = Stopwatch.GetTimestamp();
        _heldWriters++;
        try
        {
            await StepHooks.PassAsync(_volume, StepHooks.WriteHeld);
            if (_machine.HoldsWriters)
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
        return ms;
    }

    /// <summary>
    /// Runs what the machine decided the flusher must be told. No write is acknowledged before the flusher knows the
    /// page (an fsync could miss it otherwise): a write that finds the page dirty waits for the registration under
    /// way, and a registration that failed is tried again by the next write.
    /// </summary>
    private Task Apply(DirtyEffect effect)
    {
        switch (effect)
        {
            case DirtyEffect.BecameDirty:
                DifMetrics.DirtyPages.Add(1);
                // A dirty page keeps its activation: idle collection never takes it while it is not clean. The timer
                // also tells the flusher again, in case the flusher's activation was lost with its silo.
                _keepAlive ??= this.RegisterGrainTimer(() => _machine.State == PageState.Dirty ? Register() : Task.CompletedTask, new GrainTimerCreationOptions
                {
                    DueTime = TimeSpan.FromMinutes(1),
                    Period = TimeSpan.FromMinutes(1),
                    Interleave = true,
                    KeepAlive = true,
                });
                return Register();
            case DirtyEffect.Register:
                return Register();
            default:
                return _registration.IsFaulted && _machine.State == PageState.Dirty ? Register() : _registration;
        }
    }

    /// <summary>
    /// The write just applied is acknowledged only once its dirty period is durable in the volume's dirty log: the
    /// write that opened the period asks for the record (group-committed with other pages'), the others of the period
    /// wait for that same record.
    /// </summary>
    private Task ApplyAndLog(DirtyEffect effect)
    {
        Task logged = LogPeriod();
        Task applied = Apply(effect);
        // Both observed, whichever fails; no combined task when there is no record to wait for (the usual case).
        return logged.IsCompletedSuccessfully ? applied : Task.WhenAll(applied, logged);
    }

    private Task LogPeriod()
    {
        if (_dirtyLog is null)
        {
            return Task.CompletedTask;
        }
        if (_machine.TakeOpenedPeriod(out long start))
        {
            _periodRecord = RecordPeriod(_dirtyLog, start);
        }
        return _periodRecord;
    }

    private async Task RecordPeriod(DirtyLog log, long start)
    {
        try
        {
            await log.Record(_page, start);
        }
        catch (Exception e)
        {
            logger.LogError(e, "{Volume} page {Page}: dirty period {Start} could not be recorded; its writes are not acknowledged", _volume, _page, PageVersion.Format(start));
            _machine.PeriodRecordFailed(start);
            throw;
        }
    }

    private Task Register()
    {
        _dirtyGen++;
        return _registration = RegisterAsync(_machine.Version, _dirtyGen);
    }

    private async Task RegisterAsync(long version, long generation)
    {
        int commits = _intentCommits;
        _intentCommits = 0;
        long flusher = await _flusher.MarkDirty(_page, version, generation, commits, _acks?.Id ?? 0);
        await EnsureIntent(flusher);
    }

    /// <summary>The page left Writeback (ended or expired): the lease goes, held writers wake.</summary>
    private void WritebackLeft()
    {
        _lease?.Dispose();
        _lease = null;
        if (_machine.State == PageState.Clean)
        {
            Cleaned();
        }
        TaskCompletionSource? ended = _writebackEnded;
        _writebackEnded = null;
        ended?.TrySetResult();
    }

    private void Cleaned()
    {
        DifMetrics.DirtyPages.Add(-1);
        _keepAlive?.Dispose();
        _keepAlive = null;
    }

    private async Task LeaseExpired(Guid writebackId)
    {
        if (!_machine.ExpireLease(writebackId))
        {
            return;
        }
        logger.LogWarning("Writeback {Id} of {Volume} page {Page} never ended; the lease expired and the page is dirty again",
            writebackId, _volume, _page);
        DifMetrics.LeaseExpiries.Add(1);
        WritebackLeft();
        Task registered = Register();
        await StepHooks.PassAsync(_volume, StepHooks.LeaseExpired);
        await registered;
    }

    private void WakeDurableWaiters()
    {
        foreach (var (version, done) in _durableWaiters)
        {
            if (_machine.DurableVersion >= version)
            {
                done.TrySetResult(true);
            }
        }
    }

    private void Poisoned(int sector)
    {
        DifMetrics.PoisonedPages.Add(1);
        logger.LogError("{Volume} page {Page} is poisoned: sector {Sector} no longer matches the guard tag cached when it was written (memory corruption)",
            _volume, _page, sector);
    }

    private Task EnsureLoaded()
    {
        // A clean page whose stored copy failed a check reads it again: a repaired medium makes it good.
        bool retry = _machine is { PoisonedAtLoad: true, State: PageState.Clean } && _loading is { IsCompleted: true };
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
        _acks = acks.For(_volume, config.Pages);
        _dirtyLog = config.DirtyLog ? dirtyLogs.For(_volume, config.Pages) : null;
        DiskPageRead stored = await diskGrain.LoadPage(lba, claim: true);
        var machine = new PageMachine(config, _page, lba) { OnPoisoned = Poisoned };
        if (machine.LoadFrom(stored, $"{_volume} page {_page}") is { Check: CheckKind.Version })
        {
            LostWriteFound(machine.PoisonReason);
        }
        _machine = machine;
        await Loaded();
    }

    /// <summary>
    /// After a load: an intent left by an earlier activation means that activation may have died (killed silo)
    /// holding acknowledged writes that never reached the disk. The flusher that activation told of its writes
    /// judges it (exactly: it knows what was owed and what landed); the page keeps the question open until an fsync
    /// has reported the answer.
    /// </summary>
    private async Task Loaded()
    {
        long epoch = _machine.Epoch;
        _staleIntent = intent.State.Epoch != 0 && intent.State.Epoch != epoch
            ? new PageIntentState { Epoch = intent.State.Epoch, Flusher = intent.State.Flusher, AckTable = intent.State.AckTable, DirtyLog = intent.State.DirtyLog }
            : null;
        // What the earlier activation acknowledged, read before this one records anything: known only from the table
        // it recorded into, if that table has lived since (no power loss, no reboot).
        _ackEntryAtLoad = _acks?.Read(_page) ?? -1;
        _staleLastAcked = _staleIntent is { AckTable: not 0 } stale && _acks?.Id == stale.AckTable
            ? AckTable.LastAcknowledged(_ackEntryAtLoad, stale.Epoch)
            : -1;
        // And where its last dirty period began, from the dirty log, which outlives a power loss.
        _stalePeriodStart = _staleIntent is { DirtyLog: not 0 } staleOf && _dirtyLog?.Id == staleOf.DirtyLog
            ? DirtyLog.PeriodStart(_dirtyLog.Read(_page), staleOf.Epoch)
            : -1;
        if (intent.State.CorruptionReason is string why)
        {
            // The intent was unreadable: whether an earlier activation died holding acknowledged writes cannot be
            // known, so it is asked as an intent no flusher can vouch for: the next fsync reports a possible loss.
            logger.LogError("{Volume} page {Page}: {Why}; the next fsync covering it reports its writes as possibly lost", _volume, _page, why);
            _staleIntent = new PageIntentState { Epoch = -1, Flusher = 0 };
            _staleLastAcked = -1;
            _stalePeriodStart = -1;
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
        if (_machine.Poisoned)
        {
            return; // never written back: the flusher reports it, and the intent stays for the next activation
        }
        try
        {
            // Dirty, or under writeback (changed or not: once this activation is gone the writeback's end reaches a
            // new one, refused as stale, and the command under way may yet be refused by the new activation's claim).
            bool evicted = false;
            if (_machine.State != PageState.Clean)
            {
                if (!await _flusher.Evict(_page, _machine.EvictionSnapshot(_dirtyGen)))
                {
                    logger.LogError("Dirty page {Volume}/{Page} could not be written at deactivation; its intent stays set", _volume, _page);
                    return;
                }
                _machine.Evicted();
                evicted = true;
                DifMetrics.DirtyPages.Add(-1);
                DifMetrics.EvictionWrites.Add(1);
                await StepHooks.PassAsync(_volume, StepHooks.PageEvicted);
            }
            if (intent.State.Epoch == _machine.Epoch && _staleIntent is null)
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

    /// <summary>The acknowledgement table that activation records into (<see cref="AckTable.Id"/>; 0: none).</summary>
    [Id(3)] public long AckTable { get; set; }

    /// <summary>The dirty log that activation records its dirty periods into (<see cref="DirtyLog.Id"/>; 0: none).</summary>
    [Id(4)] public long DirtyLog { get; set; }
}

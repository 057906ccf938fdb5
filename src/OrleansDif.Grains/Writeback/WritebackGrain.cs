using System.Diagnostics;
using Microsoft.Extensions.Logging;
using OrleansDif.Protection;

namespace OrleansDif.Grains;

/// <summary>
/// The flusher of one volume. Tracks dirty pages; writes them back when they are older than the dirty age,
/// when there are more than the threshold (throttling writers meanwhile, as balance_dirty_pages does), and on
/// fsync. Contiguous pages of a disk go in one multi-sector command; different disks are written in parallel;
/// a page is never in two writebacks at once. Reentrant: fsync, throttled writers and the timer interleave.
/// </summary>
[Reentrant]
[DiskSpreadPlacement]
public sealed class WritebackGrain(ILogger<WritebackGrain> logger, Microsoft.Extensions.Options.IOptions<StorageOptions> options,
    [PersistentState("errors", FileGrainStorage.Name)] IPersistentState<FlusherErrorState> errorState) : Grain, IWritebackGrain
{
    private const int StoredErrors = 256;       // errors kept across activations (older ones: "dropped")
    private const int MaxRunPages = 64;          // 256 KiB per disk command at most
    private const int MaxBatchPages = 16;       // runs are grouped per disk call up to 16 pages (64 KiB); a longer run goes alone
    private const int MaxFsyncRounds = 200;

    private string _volume = "";
    private VolumeConfig? _config;
    private CommandBuilder _builder = null!;
    private readonly DirtySet _dirty = new();                      // dirty pages (since when, in Stopwatch ticks) and runs in flight
    private IGrainTimer? _timer;
    private bool _flushingAged;
    private bool _flushingThreshold;
    private TaskCompletionSource? _belowThreshold;

    private long _pages, _commands, _retries, _throttled;
    private CheckCounts _rejected;
    private int _transitFlips;
    private readonly List<int> _transitTargets = [];
    private readonly List<FaultRecord> _faultLog = [];
    private readonly HashSet<int> _poisoned = [];
    private readonly HashSet<int> _lost = [];                      // pages that lost acknowledged writes with a silo
    private long _lostReported;
    private readonly HashSet<int> _rejectedPages = [];
    private readonly Random _faultRandom = new();
    private readonly double[] _latencies = new double[4096];
    private long _latencyCount;

    // What this activation knows of each page activation, to judge durability and loss exactly.
    private readonly DurabilityLedger _ledger = new(Random.Shared.NextInt64(1, long.MaxValue));
    private ErrorSequence _errors = null!;                         // numbered on from what earlier activations stored
    private long _stale, _flushes, _expired, _intentCommits, _redirtied;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _errors = new ErrorSequence(_ledger.Incarnation, errorState.State, StoredErrors);
        _volume = this.GetPrimaryKeyString();
        await StoreErrors(); // this activation's block of error numbers, reserved before any is given out
    }

    public async Task<long> MarkDirty(int page, long version, long generation, int intentCommits = 0, long ackTable = 0)
    {
        VolumeConfig config = await Config();
        CheckPage(config, page, 1);
        _intentCommits += intentCommits;
        _ledger.Registered(page, version, generation, ackTable);
        _poisoned.Remove(page); // dirty again: written whole since it was poisoned
        _dirty.MarkDirty(page, Stopwatch.GetTimestamp());
        if (_dirty.DirtyCount > config.DirtyThreshold)
        {
            // Too many dirty pages: start writing the oldest back and hold this writer until below the threshold.
            _throttled++;
            _belowThreshold ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Task below = _belowThreshold.Task;
            _ = FlushAllDirty();
            // Best effort: the write is applied already, so a throttle that outlasts a lease lets the writer go.
            await Task.WhenAny(below, Task.Delay(TimeSpan.FromMilliseconds(config.LeaseMs)));
        }
        return _ledger.Incarnation;
    }

    public async Task<bool> Evict(int page, WritebackSnapshot snapshot)
    {
        VolumeConfig config = await Config();
        CheckPage(config, page, 1);
        var (disk, lba) = config.Locate(page);
        byte[] pi = _builder.EvictionTuples(snapshot, lba);
        IDiskGrain grain = GrainFactory.Disk(_volume, disk);
        DiskWriteResult result = await grain.WritePages(lba, snapshot.Content, pi, [snapshot.Version]);
        if (!result.Accepted)
        {
            return false;
        }
        long boot = await grain.Flush();
        _flushes++;
        if (boot != result.Boot)
        {
            return false;
        }
        _ledger.LandedDurably(page, snapshot.Version, snapshot.DirtyGeneration);
        _dirty.Remove(page);
        return true;
    }

    /// <summary>
    /// FLUSH CACHE on every disk with writes landed since its last flush (group-committed at the disk). A disk that
    /// answers from a new boot lost its cache: pages still in the same activation are dirtied again (they hold the
    /// content); the others are judged lost when an fsync asks.
    /// </summary>
    private async Task FlushDisks()
    {
        var work = _ledger.TakeFlushWork();
        var results = await Task.WhenAll(work.Select(async w =>
        {
            try
            {
                return (w.Disk, w.Pages, Boot: (long?)await GrainFactory.Disk(_volume, w.Disk).Flush(), Error: (Exception?)null);
            }
            catch (Exception e)
            {
                return (w.Disk, w.Pages, Boot: (long?)null, Error: (Exception?)e);
            }
        }));
        var redo = new List<(int Page, long Version)>();
        foreach (var (disk, pages, boot, error) in results)
        {
            _flushes++;
            redo.AddRange(_ledger.FlushAnswered(disk, pages, boot));
            if (error is not null)
            {
                logger.LogWarning(error, "Disk {Disk} of {Volume} could not be flushed; tried again by the next fsync", disk, _volume);
            }
        }
        await Redirty(redo);
    }

    /// <summary>Pages whose landed version was in a disk cache that is gone: dirty again if their activation still holds that version.</summary>
    private async Task Redirty(List<(int Page, long Version)> redo)
    {
        foreach (var (page, version) in redo)
        {
            try
            {
                if (await GrainFactory.Page(_volume, page).Redirty(version))
                {
                    _redirtied++;
                    _dirty.MarkDirty(page, Stopwatch.GetTimestamp());
                }
            }
            catch (Exception e)
            {
                logger.LogWarning(e, "Page {Page} of {Volume} could not be dirtied again after its disk lost its cache", page, _volume);
                _dirty.MarkDirty(page, Stopwatch.GetTimestamp());
            }
        }
    }

    public Task ReportLost(int page)
    {
        // No Config() here: a page reports while it loads, and a new flusher's recovery asks the loading page.
        _lost.Add(page);
        return Task.CompletedTask;
    }

    public Task<ErrorMark> SampleErrors() => Task.FromResult(_errors.Sample());

    public async Task<FsyncResult> Fsync(int firstPage, int pageCount, ErrorMark? since = null)
    {
        ErrorMark mark = since ?? _errors.Sample();
        var found = new List<WritebackError>(); // the errors this fsync records (all it reports without a handle's mark)
        VolumeConfig config = await Config();
        CheckPage(config, firstPage, pageCount);
        int last = firstPage + pageCount;
        // Every page dirtied before this call is dirty, in flight, owed or landed-unflushed now; note the version
        // each must reach. Poisoned pages are not dirty in the flusher's eyes any more, but they hold acknowledged
        // data that is not durable; pages that reported an earlier activation's intent are judged.
        var targets = _dirty.Dirty.Concat(_dirty.InFlight).Concat(_poisoned).Concat(_lost)
            .Concat(_ledger.PendingPages)
            .Where(p => p >= firstPage && p < last).Distinct().ToList();
        if (targets.Count == 0)
        {
            return new FsyncPlan(0).Result(MaxFsyncRounds, since is null ? [] : _errors.Since(mark), _errors.Sample());
        }
        // Dirty pages this flusher writes back itself: the snapshot each writeback takes (after this call began, so
        // with every acknowledged write) carries the page's state, so they are not asked first. The others (in flight,
        // poisoned, lost, owed) are asked; asking activates the ones that went with a silo: they load, find the intent
        // and say so. A dirty page whose writeback did not start (busy, failed) is asked too.
        var begun = new Dictionary<int, WritebackSnapshot>();
        var direct = targets.Where(p => _dirty.IsDirty(p) && !_dirty.IsInFlight(p)).ToHashSet();
        Task early = direct.Count > 0 ? Flush([.. direct], begun, durable: true) : Task.CompletedTask;
        List<int> asked = targets.Where(p => !direct.Contains(p)).ToList();
        PageInfo[] answers = await Task.WhenAll(asked.Select(p => GrainFactory.Page(_volume, p).GetInfo()));
        await early;
        List<int> unbegun = direct.Where(p => !begun.ContainsKey(p)).ToList();
        PageInfo[] late = await Task.WhenAll(unbegun.Select(p => GrainFactory.Page(_volume, p).GetInfo()));
        var infos = new List<(int Page, PageInfo Info)>(targets.Count);
        infos.AddRange(asked.Zip(answers));
        infos.AddRange(unbegun.Zip(late));
        infos.AddRange(begun.Select(kv => (kv.Key, kv.Value.Info!)));
        var plan = new FsyncPlan(targets.Count);
        foreach (var (page, info) in infos)
        {
            if (info.LostWrites)
            {
                plan.Judged(page);
                bool lost = _ledger.JudgeLoss(page, info.StaleIntentEpoch, info.StaleIntentFlusher, info.LoadedVersion, info.StaleIntentLastAcked, info.StaleIntentPeriodStart);
                if (lost)
                {
                    plan.Lost(page);
                }
                logger.LogInformation("{Volume} page {Page}: earlier activation {Epoch} (flusher {Flusher}, this one {Incarnation}) judged {Verdict}: activation {Activation} loaded {Loaded}, the table says {LastAcked}, the dirty log {PeriodStart}",
                    _volume, page, info.StaleIntentEpoch, info.StaleIntentFlusher, _ledger.Incarnation, lost ? "lost" : "kept", info.Activation,
                    PageVersion.Format(info.LoadedVersion), info.StaleIntentLastAcked < 0 ? "nothing" : PageVersion.Format(info.StaleIntentLastAcked),
                    info.StaleIntentPeriodStart < 0 ? "nothing" : PageVersion.Format(info.StaleIntentPeriodStart));
            }
            _lost.Remove(page);
            // Earlier activations of the page that left owed writes and no intent to ask about: lost with them.
            if (_ledger.DropOwedOfOtherActivations(page, info.Activation, info.LoadedVersion, info.AckTable, info.AckTableEntryAtLoad))
            {
                plan.Lost(page);
                logger.LogInformation("{Volume} page {Page}: an earlier activation than {Activation} left writes owed and no intent: lost",
                    _volume, page, info.Activation);
            }
            if (info.Poisoned || _poisoned.Contains(page))
            {
                plan.Poisoned(page);
            }
            else if (info.Version > info.LoadedVersion && _ledger.Durable(page) < info.Version)
            {
                plan.Want(page, info.Version, info.Activation);
            }
        }
        RecordLosses(plan, found); // in the turn that judged them: no fsync of a handle can pass them by meanwhile
        // Rounds until everything is durable: write back, flush the disks, check. Bounded in time by two leases (a
        // writeback whose flusher died ends when its lease expires) and in rounds.
        long deadline = Stopwatch.GetTimestamp() + Stopwatch.Frequency * (2L * config.LeaseMs + 5_000) / 1000;
        bool flushed = false;
        for (int round = 0; round < MaxFsyncRounds * 10 && (!plan.Done || !flushed) && (round < MaxFsyncRounds || Stopwatch.GetTimestamp() < deadline); round++)
        {
            foreach (int p in plan.Waiting.Where(_poisoned.Contains).ToList())
            {
                plan.Poisoned(p); // found poisoned by its writeback: it will never be durable; reported, not retried
            }
            if (round > 1)
            {
                // Pages still not durable (busy, rejected, lease pending): back off a little before the next round.
                await Task.Delay(Math.Min(50, round * 2));
            }
            // Wait for writebacks already under way (they may carry an older version), then write the rest.
            await Task.WhenAll(_dirty.RunsCarrying(plan.Waiting));
            // (The pages written back above at the wanted version are not written again in the first round.)
            await Flush(plan.Waiting.Where(p => !_dirty.IsInFlight(p)
                && !(round == 0 && begun.ContainsKey(p) && _ledger.LandedVersion(p, plan.ActivationOf(p)) >= plan.VersionOf(p))).ToList(), durable: true);
            await FlushDisks();
            flushed = true;
            SettleLanded(plan);
            int[] pages = [.. plan.Waiting];
            if (pages.Length == 0)
            {
                break;
            }
            DurableStatus[] durable = await Task.WhenAll(pages.Select(p =>
                GrainFactory.Page(_volume, p).CheckDurable(plan.VersionOf(p), plan.ActivationOf(p))));
            for (int i = 0; i < pages.Length; i++)
            {
                int p = pages[i];
                if (durable[i] == DurableStatus.Lost)
                {
                    logger.LogInformation("{Volume} page {Page}: lost with its silo while an fsync waited for version {Version} of activation {Activation}",
                        _volume, p, PageVersion.Format(plan.VersionOf(p)), plan.ActivationOf(p));
                    plan.Lost(p); // its silo died while this fsync ran, with writes the fsync was waiting for
                    RecordLosses(plan, found);
                }
                else if (durable[i] == DurableStatus.Durable && !_dirty.IsDirty(p) && !_dirty.IsInFlight(p) && !_ledger.Unflushed(p))
                {
                    plan.Durable(p); // written, and every disk flushed since
                }
                else if (durable[i] == DurableStatus.NotYet)
                {
                    _ledger.RequestFlush(config.Locate(p).Disk); // maybe written by an earlier flusher: flush it anyway
                }
            }
        }
        if (found.Count > 0)
        {
            // Stored before the pages forget their earlier activation's intent: if this activation dies now, the
            // next one still tells every handle (or, not stored, the pages are judged again).
            await StoreErrors();
        }
        int[] acknowledge = [.. plan.ToAcknowledge];
        if (acknowledge.Length > 0)
        {
            // Judged and recorded: the pages stop reporting their earlier activation's intent.
            await Task.WhenAll(acknowledge.Select(p => GrainFactory.Page(_volume, p).LossReported()));
        }
        return plan.Result(MaxFsyncRounds, since is null ? [.. found] : _errors.Since(mark), _errors.Sample());
    }

    private readonly StateWriteChain _errorWrites = new();

    /// <summary>Stores the error sequence as it is now, after any store under way (one writer of the state at a time).</summary>
    private Task StoreErrors() => _errorWrites.Then(() =>
    {
        errorState.State = _errors.ToStore();
        return errorState.WriteStateAsync();
    });

    /// <summary>
    /// Records in the error sequence the pages <paramref name="plan"/> found lost that are not recorded yet: every
    /// handle open now is told once, at its next fsync (EIO).
    /// </summary>
    private void RecordLosses(FsyncPlan plan, List<WritebackError> found)
    {
        int[] fresh = [.. plan.LostPages.Except(found.SelectMany(e => e.Pages))];
        if (fresh.Length > 0)
        {
            found.Add(_errors.Record(fresh, $"{fresh.Length} pages lost acknowledged writes that were not yet durable when their silo died"));
            _lostReported += fresh.Length;
        }
    }

    /// <summary>Pages of <paramref name="plan"/> this flusher wrote at the wanted version (or later) and flushed since: durable.</summary>
    private void SettleLanded(FsyncPlan plan)
    {
        foreach (int p in plan.Waiting.ToList())
        {
            if (_ledger.Durable(p) >= plan.VersionOf(p) && PageVersion.EpochOf(_ledger.Durable(p)) == plan.ActivationOf(p))
            {
                plan.Durable(p);
            }
        }
    }

    public async Task<int> StartWriteback(int firstPage, int pageCount)
    {
        VolumeConfig config = await Config();
        CheckPage(config, firstPage, pageCount);
        int last = firstPage + pageCount;
        var pages = _dirty.Dirty.Where(p => p >= firstPage && p < last).ToList();
        await Task.WhenAll(_dirty.RunsCarrying(pages));
        await Flush(pages);
        return pages.Count;
    }

    public async Task<WritebackStats> GetStats()
    {
        await Config();
        double[] lat = _latencies.AsSpan(0, (int)Math.Min(_latencyCount, _latencies.Length)).ToArray();
        Array.Sort(lat);
        double P(double q) => lat.Length == 0 ? 0 : lat[Math.Min(lat.Length - 1, (int)(q * lat.Length))];
        return new WritebackStats(_pages, _commands, _builder.TagsComputed, _builder.TagsReused, _rejected.Guard, _rejected.App, _rejected.Ref, _retries,
            _builder.BounceCopies, _dirty.Pending, _throttled, P(0.5), P(0.99), _poisoned.Count, _lostReported,
            _stale, _flushes, _expired, _intentCommits, _redirtied);
    }

    public async Task InjectTransitBitflips(int commands)
    {
        await Config();
        if (commands is < 1 or > 1_000_000)
        {
            throw new StorageException(StorageError.OutOfRange, $"{commands} commands: must be 1..1000000");
        }
        options.Value.RequireFaultInjection(FaultKind.TransitBitflip);
        _transitFlips += commands;
    }

    public async Task InjectTransitBitflip(int page)
    {
        VolumeConfig config = await Config();
        CheckPage(config, page, 1);
        options.Value.RequireFaultInjection(FaultKind.TransitBitflip);
        _transitTargets.Add(page);
    }

    public async Task<WritebackEvents> GetEvents()
    {
        await Config();
        return new WritebackEvents([.. _rejectedPages.Order()], [.. _poisoned.Order()], [.. _faultLog]);
    }

    // ------------------------------------------------------------------ flushing

    private Task? _recovery;

    private async Task<VolumeConfig> Config()
    {
        if (_recovery is { IsCompletedSuccessfully: true })
        {
            return _config!;
        }
        if (_config is null)
        {
            VolumeConfig config = await GrainFactory.Volume(_volume).GetConfig();
            if (_config is null)
            {
                _config = config;
                _builder = new CommandBuilder(config, WritebackPolicies.For(config.Policy), GrainHelpers.Scheme(config));
                TimeSpan period = TimeSpan.FromMilliseconds(Math.Max(1, config.DirtyAgeMs / 2));
                _timer = this.RegisterGrainTimer(FlushAged, new GrainTimerCreationOptions
                {
                    DueTime = period,
                    Period = period,
                    Interleave = true,
                    KeepAlive = true,
                });
            }
        }
        if (_recovery is null || _recovery.IsFaulted)
        {
            _recovery = RecoverDirtyPages();
        }
        await _recovery;
        return _config;
    }

    /// <summary>
    /// A new activation of the flusher (the old one went with its silo) knows no dirty page, and an fsync must not
    /// answer "durable" for pages it has never heard of. Like fsync walking the page cache's dirty tags, it asks
    /// the cluster for the active pages of its volume and takes over the ones that are not clean.
    /// </summary>
    private async Task RecoverDirtyPages()
    {
        List<GrainId> active = await GrainFactory.GetGrain<IManagementGrain>(0).GetActiveGrains(GrainType.Create(PageGrain.TypeName));
        string prefix = _volume + "/";
        var candidates = new SortedSet<int>();
        foreach (GrainId id in active)
        {
            string key = id.Key.ToString()!;
            if (key.StartsWith(prefix, StringComparison.Ordinal) && int.TryParse(key.AsSpan(prefix.Length), out int page))
            {
                candidates.Add(page);
            }
        }
        // Every page that holds acknowledged writes has its write intent persisted (set before the first write
        // was acknowledged): the persistent states name the dirty pages even when a silo did not answer above,
        // and the pages that went with a silo (asking them brings them up, and they report the loss).
        foreach (var (name, state) in FileGrainStorage.List<PageIntentState>(options.Value.DataDirectory, "intent", PageGrain.TypeName, _volume))
        {
            if ((state.Epoch != 0 || state.CorruptionReason is not null) && int.TryParse(name, out int page) && page >= 0)
            {
                candidates.Add(page);
            }
        }
        int[] pages = [.. candidates];
        PageInfo?[] infos = await Task.WhenAll(pages.Select(async p =>
        {
            try
            {
                return (PageInfo?)await GrainFactory.Page(_volume, p).GetInfo();
            }
            catch (Exception e)
            {
                logger.LogWarning(e, "Page {Page} of {Volume} did not answer the flusher's recovery; it is taken as dirty", p, _volume);
                return null;
            }
        }));
        int found = 0;
        for (int i = 0; i < pages.Length; i++)
        {
            if (infos[i] is { LostWrites: true })
            {
                _lost.Add(pages[i]);
            }
            if (infos[i] is { } written && written.DurableVersion > written.LoadedVersion && !written.Poisoned)
            {
                // Written back in this page activation, into a disk's cache that the old flusher may not have
                // flushed: the next fsync flushes that disk, and if the disk came back without its cache since
                // (another boot), the page is written again.
                _ledger.Adopt(pages[i], _config!.Locate(pages[i]).Disk, written.DurableVersion, written.WrittenBoot);
            }
            if (infos[i] is { } info && info.State == PageState.Clean)
            {
                continue;
            }
            found++;
            if (infos[i] is { Poisoned: true })
            {
                _poisoned.Add(pages[i]);
            }
            else
            {
                _dirty.MarkDirty(pages[i], Stopwatch.GetTimestamp()); // unanswered too: a flush finds out
            }
        }
        if (found > 0)
        {
            logger.LogInformation("Flusher of {Volume} took over {Count} dirty pages", _volume, found);
        }
    }

    private async Task FlushAged()
    {
        if (_flushingAged || _dirty.DirtyCount == 0)
        {
            return;
        }
        _flushingAged = true;
        try
        {
            long age = Stopwatch.Frequency * _config!.DirtyAgeMs / 1000;
            List<int> aged = _dirty.AgedUnits(Stopwatch.GetTimestamp(), age, _config.StripePages);
            if (aged.Count > 0)
            {
                await Flush(aged);
            }
        }
        catch (Exception e)
        {
            logger.LogError(e, "Background writeback of volume {Volume} failed; pages stay dirty", _volume);
        }
        finally
        {
            _flushingAged = false;
        }
    }

    /// <summary>
    /// Over the threshold: write back every dirty page not already in flight, batched by LBA, until below it. One such
    /// writeback at a time: every writer over the threshold would otherwise plan the whole dirty set again.
    /// </summary>
    private async Task FlushAllDirty()
    {
        if (_flushingThreshold)
        {
            return;
        }
        _flushingThreshold = true;
        try
        {
            while (_dirty.DirtyCount > _config!.DirtyThreshold)
            {
                List<int> pages = _dirty.NotInFlight();
                if (pages.Count == 0)
                {
                    break; // all in flight: the ends of their runs wake the throttled writers
                }
                await Flush(pages);
            }
        }
        catch (Exception e)
        {
            logger.LogError(e, "Threshold writeback of volume {Volume} failed; pages stay dirty", _volume);
        }
        finally
        {
            _flushingThreshold = false;
        }
    }

    /// <summary>
    /// Writes back the given pages: runs of contiguous LBAs on one disk (one command each), batched per disk (one disk
    /// call each), all batches in parallel.
    /// </summary>
    private Task Flush(List<int> pages, Dictionary<int, WritebackSnapshot>? begun = null, bool durable = false)
    {
        var tasks = new List<Task>();
        foreach (var (disk, runs) in _dirty.PlanBatches(pages, _config!, MaxRunPages, MaxBatchPages))
        {
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            List<int> batch = [.. runs.SelectMany(r => r)];
            _dirty.Start(batch, done.Task);
            tasks.Add(WriteBatch(disk, runs, batch, done, begun, durable));
        }
        return Task.WhenAll(tasks);
    }

    private async Task WriteBatch(int disk, List<List<int>> runs, List<int> pages, TaskCompletionSource done, Dictionary<int, WritebackSnapshot>? begun, bool durable)
    {
        VolumeConfig config = _config!;
        var snapshots = new WritebackSnapshot?[pages.Count];
        try
        {
            Task<WritebackSnapshot>[] begins = pages.Select(p => GrainFactory.Page(_volume, p).BeginWriteback()).ToArray();
            try
            {
                await Task.WhenAll(begins);
            }
            catch (Exception e)
            {
                logger.LogWarning(e, "Some pages of volume {Volume} could not begin writeback; they stay dirty", _volume);
            }
            for (int i = 0; i < pages.Count; i++)
            {
                // Each begin on its own: one page that failed does not strand the ones that began.
                WritebackSnapshot? snapshot = begins[i].IsCompletedSuccessfully ? begins[i].Result : null;
                snapshots[i] = snapshot?.Status == BeginStatus.Started ? snapshot : null;
                if (snapshots[i] is not null && begun is not null)
                {
                    begun[pages[i]] = snapshot!;
                }
                if (snapshot?.Status == BeginStatus.Poisoned)
                {
                    _poisoned.Add(pages[i]); // never written back; fsync reports it
                }
                else if (snapshot is null || snapshot.Status == BeginStatus.Busy)
                {
                    _dirty.MarkDirty(pages[i], Stopwatch.GetTimestamp()); // failed, or someone else's writeback: again later
                }
            }
            await StepHooks.PassAsync(_volume, StepHooks.WritebackBegun);
            // Within each run, one command per contiguous stretch of pages that did start writeback.
            var spans = new List<(int Start, int End)>();
            int first = 0;
            foreach (List<int> run in runs)
            {
                int stop = first + run.Count;
                int start = first;
                while (start < stop)
                {
                    if (snapshots[start] is null)
                    {
                        start++;
                        continue;
                    }
                    int end = start;
                    while (end + 1 < stop && snapshots[end + 1] is not null && pages[end + 1] == pages[end] + 1
                           && config.Locate(pages[end + 1]).Lba == config.Locate(pages[end]).Lba + config.SectorsPerPage)
                    {
                        end++;
                    }
                    spans.Add((start, end));
                    start = end + 1;
                }
                first = stop;
            }
            if (spans.Count > 0)
            {
                await WriteCommands(disk, pages, snapshots, spans, durable);
            }
        }
        catch (Exception e)
        {
            logger.LogError(e, "Writeback of volume {Volume} pages {First}..{Last} failed", _volume, pages[0], pages[^1]);
            // End what was begun as failed so the pages are dirty again rather than waiting for their lease.
            for (int i = 0; i < pages.Count; i++)
            {
                if (snapshots[i] is { } s)
                {
                    try
                    {
                        await GrainFactory.Page(_volume, pages[i]).EndWriteback(s.WritebackId, false);
                    }
                    catch (Exception inner)
                    {
                        logger.LogWarning(inner, "Could not end writeback of page {Page}; its lease will", pages[i]);
                    }
                    _dirty.MarkDirty(pages[i], Stopwatch.GetTimestamp());
                }
            }
        }
        finally
        {
            _dirty.Finish(pages, done.Task);
            done.TrySetResult();
            if (_belowThreshold is not null && _dirty.DirtyCount <= config.DirtyThreshold)
            {
                _belowThreshold.TrySetResult();
                _belowThreshold = null;
            }
        }
    }

    /// <summary>Builds one command per span of <paramref name="pages"/>, sends them to the disk in one call, and ends every page's writeback.</summary>
    private async Task WriteCommands(int disk, List<int> pages, WritebackSnapshot?[] snapshots, List<(int Start, int End)> spans, bool durable)
    {
        VolumeConfig config = _config!;
        var commands = new DiskCommand[spans.Count];
        for (int c = 0; c < spans.Count; c++)
        {
            var (start, end) = spans[c];
            var begun = new WritebackSnapshot[end - start + 1];
            for (int i = 0; i < begun.Length; i++)
            {
                begun[i] = snapshots[start + i]!;
            }
            commands[c] = _builder.Build(config.Locate(pages[start]).Lba, begun);
        }
        if (WritebackPolicies.For(config.Policy).ReadsAgainAtTransfer)
        {
            // The 2010 bug: the controller reads (DMA) the pages again later, while writers went on.
            await StepHooks.PassAsync(_volume, StepHooks.BeforeTransfer);
            if (config.UnstableDelayMs > 0)
            {
                await Task.Delay(config.UnstableDelayMs);
            }
            var indexes = spans.SelectMany((span, c) => Enumerable.Range(span.Start, span.End - span.Start + 1).Select(j => (Command: c, Page: j))).ToArray();
            byte[][] now = await Task.WhenAll(indexes.Select(x =>
                GrainFactory.Page(_volume, pages[x.Page]).ReadForTransfer(snapshots[x.Page]!.WritebackId)));
            for (int k = 0; k < indexes.Length; k++)
            {
                var (c, j) = indexes[k];
                now[k].CopyTo(commands[c].Data.AsSpan((j - spans[c].Start) * VolumeConfig.PageSize));
            }
        }
        for (int c = 0; c < spans.Count; c++)
        {
            InjectTransitFault(commands[c], pages, spans[c].Start);
        }
        long t0 = Stopwatch.GetTimestamp();
        DiskWriteResult[] results;
        long? flushedBoot = null;
        Dictionary<int, (long Version, long Boot)>? covered = null;
        if (durable)
        {
            // fsync's writeback: the disk flushes behind the batch in the same call, which also settles what landed
            // there before (taken now: it landed before this call was sent, so before the disk's flush).
            covered = _ledger.TakeUnflushed(disk);
            DiskFlushedBatch batch;
            try
            {
                batch = await GrainFactory.Disk(_volume, disk).WritePageBatchAndFlush(commands);
            }
            catch
            {
                _ledger.FlushAnswered(disk, covered, null); // still owed a flush
                throw;
            }
            _flushes++;
            results = batch.Results;
            flushedBoot = batch.Boot;
        }
        else
        {
            results = await GrainFactory.Disk(_volume, disk).WritePageBatch(commands);
        }
        double ms = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        _latencies[_latencyCount++ % _latencies.Length] = ms;
        DifMetrics.WritebackIoMs.Record(ms);
        _commands += commands.Length;
        for (int c = 0; c < spans.Count; c++)
        {
            var (start, end) = spans[c];
            int n = end - start + 1;
            DiskWriteResult result = results[c];
            if (result.Accepted)
            {
                _pages += n;
                DifMetrics.WritebackPages.Add(n);
                for (int i = start; i <= end; i++)
                {
                    if (result.Boot == flushedBoot)
                    {
                        _ledger.LandedDurably(pages[i], snapshots[i]!.Version, snapshots[i]!.DirtyGeneration, covered!);
                    }
                    else
                    {
                        _ledger.Landed(pages[i], disk, snapshots[i]!.Version, snapshots[i]!.DirtyGeneration, result.Boot);
                    }
                }
            }
            else if (result.Stale)
            {
                // The disk holds a newer version of a page of this command (a later activation claimed it, or a newer
                // writeback landed first): fenced, nothing written; the pages say what they still owe.
                _stale++;
                logger.LogInformation("Disk {Disk} of {Volume} refused pages {First}..{Last} as stale", disk, _volume, pages[start], pages[end]);
            }
            else
            {
                _retries++;
                _rejected.Add(result.Failure!.Check);
                // The disk reports the first failing sector; which pages of the command failed, the flusher checks
                // itself on the command it sent.
                foreach (int i in _builder.FailingPages(commands[c]))
                {
                    if (_rejectedPages.Count < 100_000)
                    {
                        _rejectedPages.Add(pages[start + i]);
                    }
                }
                logger.LogInformation("Disk {Disk} of {Volume} rejected pages {First}..{Last}: {Failure}; they stay dirty for a retry",
                    disk, _volume, pages[start], pages[end], result.Failure);
            }
            if (result.Accepted)
            {
                await StepHooks.PassAsync(_volume, StepHooks.CommandLanded);
            }
        }
        if (covered is not null)
        {
            // What landed before the call: on the medium if the flush came from the same disk activation, else lost with
            // its cache (the pages still holding it are dirtied again).
            await Redirty(_ledger.FlushAnswered(disk, covered, flushedBoot));
        }
        var ending = new List<(int Page, bool Accepted, long Boot, ulong[]? Tags)>();
        for (int c = 0; c < spans.Count; c++)
        {
            for (int j = spans[c].Start; j <= spans[c].End; j++)
            {
                // The tags written go back to the page, which caches them where it has none (a store cleared them).
                ulong[]? tags = results[c].Accepted ? _builder.WrittenTags(commands[c], j - spans[c].Start) : null;
                ending.Add((j, results[c].Accepted, results[c].Boot, tags));
            }
        }
        EndStatus[] ends = await Task.WhenAll(ending.Select(x =>
            GrainFactory.Page(_volume, pages[x.Page]).EndWriteback(snapshots[x.Page]!.WritebackId, x.Accepted, x.Boot, x.Tags)));
        for (int k = 0; k < ending.Count; k++)
        {
            int j = ending[k].Page;
            snapshots[j] = null; // ended: nothing left to undo
            if (ends[k] == EndStatus.StaleWriteback)
            {
                _expired++; // its lease expired first (or the page came back in a new activation)
            }
            if (ends[k] != EndStatus.Ended)
            {
                _dirty.MarkDirty(pages[j], Stopwatch.GetTimestamp());
            }
        }
    }

    /// <summary>Fault injection: the data of a command is damaged on its way to the disk, after its PI was built.</summary>
    private void InjectTransitFault(DiskCommand command, List<int> pages, int start)
    {
        int target = -1;
        for (int i = 0; i < command.Pages && target < 0; i++)
        {
            int at = _transitTargets.IndexOf(pages[start + i]);
            if (at >= 0)
            {
                _transitTargets.RemoveAt(at);
                target = i;
            }
        }
        if (target < 0 && _transitFlips > 0)
        {
            _transitFlips--;
            target = _faultRandom.Next(command.Pages);
        }
        if (target < 0)
        {
            return;
        }
        int bit = target * VolumeConfig.PageSize * 8 + _faultRandom.Next(VolumeConfig.PageSize * 8);
        command.Data[bit / 8] ^= (byte)(1 << (bit % 8));
        long sector = command.Lba + bit / 8 / _config!.SectorSize;
        if (_faultLog.Count < 100_000)
        {
            _faultLog.Add(new FaultRecord(FaultKind.TransitBitflip, sector, 1, sector, pages[start + target]));
        }
    }

    private static void CheckPage(VolumeConfig config, int first, int count)
    {
        if (count <= 0 || first < 0 || first > config.Pages - count)
        {
            throw new StorageException(StorageError.OutOfRange, $"pages {first}..{first + count - 1} are outside volume '{config.Id}' of {config.Pages} pages");
        }
    }
}

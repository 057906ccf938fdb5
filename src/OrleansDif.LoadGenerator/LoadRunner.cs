using System.Collections.Concurrent;
using System.Diagnostics;
using HdrHistogram;
using OrleansDif.Cluster;

namespace OrleansDif.LoadGenerator;

/// <summary>Counters the progress display reads while a run goes on.</summary>
public sealed class LiveCounters
{
    public long Writes;
    public long Stores;
    public long Reads;
    public long Fsyncs;
    public long Pings;
    public long Refused;
    public long Errors;
    public long Bytes;
    public long Detected;

    public long Ops => Interlocked.Read(ref Writes) + Interlocked.Read(ref Stores) + Interlocked.Read(ref Reads)
        + Interlocked.Read(ref Fsyncs) + Interlocked.Read(ref Pings);
}

/// <summary>
/// Runs one workload against one volume of a connected cluster, then fsyncs, reads every touched page back
/// (from the page cache and from the disks) and compares each byte with the client's model.
/// </summary>
public sealed class LoadRunner(IClusterClient client, ClusterConfig cluster, LoadOptions options, ChaosMonkey? chaos = null)
{
    private const long MaxLatencyUs = 600_000_000; // 10 minutes

    public LiveCounters Live { get; private set; } = new();

    public Stopwatch Clock { get; private set; } = new();

    public string? CurrentPolicy { get; private set; }

    /// <summary>The volume a run with <paramref name="policy"/> uses: the config's first volume with that policy.</summary>
    /// <summary>Appended to the volume ids this runner uses (a warm-up runs on volumes of its own).</summary>
    public string VolumeSuffix { get; init; } = "";

    public VolumeConfig VolumeFor(WritebackPolicy policy, bool? tagsAtCopyIn = null)
    {
        if (cluster.Volumes.Count == 0)
        {
            throw new UsageException($"cluster config has no volume to run against");
        }
        VolumeConfig template = cluster.Volumes[0].ToVolumeConfig();
        if (options.Pages > template.Pages)
        {
            throw new UsageException($"--pages {options.Pages} is more than volume '{template.Id}' has ({template.Pages})");
        }
        bool tags = tagsAtCopyIn ?? options.TagsAtCopyIn ?? template.TagsAtCopyIn;
        string id = $"{template.Id}-{policy.ToString().ToLowerInvariant()}{(tags ? "" : "-nocache")}{VolumeSuffix}";
        return template with { Id = id, Policy = policy, TagsAtCopyIn = tags };
    }

    public async Task<LoadReport> RunAsync(WritebackPolicy policy, CancellationToken cancellationToken, bool? tagsAtCopyIn = null)
    {
        Live = new LiveCounters();
        CurrentPolicy = policy.ToString().ToLowerInvariant();
        // However the cluster behaves, a run ends: past this bound no call is retried and the final fsync is not
        // tried again, so a cluster that stopped answering fails the run instead of holding it for ever.
        _giveUpAt = Stopwatch.GetTimestamp() + (long)((options.Duration + GiveUpMargin + (options.ChaosKills > 0 ? ChaosOverrun : TimeSpan.Zero)).TotalSeconds * Stopwatch.Frequency);
        VolumeConfig volume = VolumeFor(policy, tagsAtCopyIn);
        if (options.Inject.Count > 0 && !cluster.FaultInjection)
        {
            throw new UsageException("--inject: fault injection is disabled in the cluster config (set faultInjection: true, or --set faultInjection=true)");
        }
        bool ping = options.Workload == Workload.Ping;
        var model = new ContentModel(keepUnsynced: chaos is not null);
        _retried = _fsyncFailures = _lossReports = _falseLossReports = 0;
        _falseLossDetails.Clear();
        var errors = new ConcurrentQueue<string>();
        var latency = new Dictionary<string, LongConcurrentHistogram>();
        foreach (string kind in new[] { "write", "store", "read", "fsync", "ping" })
        {
            latency[kind] = new LongConcurrentHistogram(1, MaxLatencyUs, 3);
        }
        var stalls = new LongConcurrentHistogram(1, MaxLatencyUs, 3);
        // A run with a chaos kill count may go on past its duration (at most ChaosOverrun): room for those seconds too.
        int seconds = (int)Math.Ceiling(options.Duration.TotalSeconds) + 2 + (options.ChaosKills > 0 ? (int)ChaosOverrun.TotalSeconds + 60 : 0);
        var buckets = Enumerable.Range(0, seconds).Select(_ => new LongConcurrentHistogram(1, MaxLatencyUs, 2)).ToArray();

        IWritebackGrain flusher = client.Flusher(volume.Id);
        WritebackStats wbBefore = new(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
        DiskStats[] diskBefore = [];
        if (!ping)
        {
            // Set-up calls are idempotent: retried when a silo of a cluster that is still settling does not answer.
            await RetryAsync(() => client.Volume(volume.Id).Create(volume));
            // Same volume, same placement, checks on or off: the only difference between two runs is the checks.
            await RetryAsync(() => Task.WhenAll(Enumerable.Range(0, volume.Disks).Select(d =>
                client.Disk(volume.Id, d).SetVerifyOnWrite(options.VerifyOnDisk && volume.VerifyOnDisk))));
            wbBefore = await RetryAsync(() => flusher.GetStats());
            diskBefore = await RetryAsync(() => DiskStatsAsync(volume));
            // Media bit rot hits data at rest: pages past the writers' range, written once before the run.
            int[] cold = options.Inject.Contains(FaultKind.MediaBitrot)
                ? Enumerable.Range(options.Pages, Math.Max(0, Math.Min(volume.Pages - options.Pages, 32))).ToArray()
                : [];
            // The content each page has before the run: the base of the model.
            await ForEachAsync(Enumerable.Range(0, options.Pages).Concat(cold), 32, async p =>
            {
                IPageGrain grain = client.Page(volume.Id, p);
                byte[] content = await RetryAsync(() => grain.Read(0, VolumeConfig.PageSize));
                PageInfo info = await RetryAsync(() => grain.GetInfo());
                model.SetBase(p, content, info.Version, info.Activation);
            });
            if (cold.Length > 0)
            {
                var rng = new Random(options.Seed);
                foreach (int p in cold)
                {
                    byte[] data = Fill(new byte[VolumeConfig.PageSize], rng);
                    WriteResult w = await client.Page(volume.Id, p).Write(0, data, wait: true);
                    model.Acknowledge(p, w.Version, 0, data, w.Activation, w.LoadedVersion);
                }
                FsyncResult synced = await flusher.Fsync(cold[0], cold.Length);
                if (!synced.Durable)
                {
                    errors.Enqueue($"fsync of the cold pages: {synced.Error}");
                }
            }
            _injector = options.Inject.Count > 0
                ? new FaultInjector(client, volume, options.Inject, options.InjectEvery, cold.Length > 0 ? cold : [], Math.Max(1, options.Pages / 2))
                : null;
            if (_injector is not null)
            {
                await RetryAsync(_injector.BeginAsync);
            }
        }
        else
        {
            _injector = null;
        }

        _pages = Enumerable.Range(0, options.Pages).Select(p => client.Page(volume.Id, p)).ToArray();
        _pings = Enumerable.Range(0, options.Pages).Select(p => client.GetGrain<IPingGrain>(p)).ToArray();
        Clock = Stopwatch.StartNew();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        Func<long> acknowledged = () => Interlocked.Read(ref Live.Writes) + Interlocked.Read(ref Live.Stores);
        Task killing = chaos?.RunAsync(() => Clock.Elapsed.TotalSeconds, acknowledged, stop.Token) ?? Task.CompletedTask;
        _ = EndRunAsync(stop, chaos, acknowledged);
        await Task.WhenAll(Enumerable.Range(0, options.Writers).Select(w =>
            Task.Run(() => WriterAsync(w, volume, model, latency, stalls, buckets, errors, stop.Token))));
        double elapsed = Clock.Elapsed.TotalSeconds;
        if (chaos is not null)
        {
            await killing; // a kill under way ends with its restart
            await WaitForSilosAsync(cluster.Silos.Count, TimeSpan.FromSeconds(90));
        }

        var verify = new VerifyReport(0, 0, 0, 0);
        MirrorReport? mirror = null;
        Dictionary<string, FaultStats>? faults = null;
        WritebackStats wbAfter = wbBefore;
        DiskStats[] diskAfter = diskBefore;
        if (!ping)
        {
            long t0 = Stopwatch.GetTimestamp();
            FsyncResult final = await FsyncAsync(volume, volume.Pages, model, final: true);
            latency["fsync"].RecordValue(Math.Max(1, (long)Stopwatch.GetElapsedTime(t0).TotalMicroseconds));
            if (!final.Durable && !ExplainedByFaults(final))
            {
                errors.Enqueue($"final fsync: {final.Error}");
            }
            PageOutcome[] outcomes = await VerifyAsync(volume, model);
            foreach (string violation in model.Violations)
            {
                errors.Enqueue("synced write lost: " + violation);
            }
            if (chaos is null && model.UnsyncedLost > 0)
            {
                errors.Enqueue($"{model.UnsyncedLost} acknowledged writes lost although no silo was killed");
            }
            if (volume.Mirrors > 1)
            {
                // Every slot of every copy compared and mended: what the reads did not meet (a fault on a copy) too.
                ScrubResult[] scrubs = await Task.WhenAll(Enumerable.Range(0, volume.Disks).Select(d =>
                    CallAsync(() => client.Disk(volume.Id, d).Scrub())));
                DiskStats[] now = await DiskStatsAsync(volume);
                mirror = new MirrorReport(volume.Mirrors, now.Sum(d => d.Repaired), now.Sum(d => d.Resynced),
                    now.Sum(d => d.Unrepairable), now.Sum(d => d.OutOfSync), scrubs.Sum(r => r.Slots), scrubs.Sum(r => r.Repaired));
            }
            HashSet<int> affected = [];
            if (_injector is not null)
            {
                foreach (PageOutcome o in outcomes.Where(o => o.IntegrityError is not null))
                {
                    _injector.Detected(o.Page);
                }
                (faults, affected) = await _injector.SummarizeAsync(
                    outcomes.Where(o => o.CacheDiffers || o.DiskDiffers).Select(o => o.Page).ToHashSet());
            }
            // What faults explain is theirs; anything else is a failure of the run.
            PageOutcome[] own = outcomes.Where(o => !affected.Contains(o.Page)).ToArray();
            foreach (PageOutcome o in own)
            {
                if (o.IntegrityError is not null)
                {
                    errors.Enqueue($"verify: page {o.Page}: {o.IntegrityError}");
                }
                if (o.CacheDiffers)
                {
                    errors.Enqueue($"verify: page {o.Page} in the page cache differs from the acknowledged writes");
                }
                if (o.DiskDiffers)
                {
                    errors.Enqueue($"verify: page {o.Page} on its disk differs from the acknowledged writes after fsync");
                }
            }
            verify = new VerifyReport(outcomes.Length, own.Count(o => o.CacheDiffers), own.Count(o => o.DiskDiffers),
                model.AcknowledgedWrites, outcomes.Count(o => o.IntegrityError is not null));
            wbAfter = await flusher.GetStats();
            diskAfter = await DiskStatsAsync(volume);
            if (!options.VerifyOnDisk)
            {
                await Task.WhenAll(Enumerable.Range(0, volume.Disks).Select(d =>
                    client.Disk(volume.Id, d).SetVerifyOnWrite(volume.VerifyOnDisk)));
            }
        }

        Percentiles Pct(LongConcurrentHistogram h) => h.TotalCount == 0
            ? new Percentiles(0, 0, 0, 0)
            : new Percentiles(Ms(h.GetValueAtPercentile(50)), Ms(h.GetValueAtPercentile(99)), Ms(h.GetValueAtPercentile(99.9)), Ms(h.GetMaxValue()));
        long ops = Live.Ops;
        return new LoadReport
        {
            Policy = CurrentPolicy,
            Workload = ping ? "ping" : "mixed",
            Volume = volume.Id,
            Silos = (await client.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true)).Count,
            Writers = options.Writers,
            Seed = options.Seed,
            Wait = options.Wait,
            DurationSeconds = Math.Round(elapsed, 3),
            Ops = new OpCounts(Live.Writes, Live.Stores, Live.Reads, Live.Fsyncs, Live.Refused, Live.Pings, 0),
            OpsPerSecond = Math.Round(ops / elapsed, 1),
            MbPerSecond = Math.Round(Live.Bytes / elapsed / 1e6, 3),
            LatencyMs = new LatencyReport(Pct(latency["write"]), Pct(latency["store"]), Pct(latency["read"]), Pct(latency["fsync"]), Pct(latency["ping"])),
            StallMs = stalls.TotalCount == 0
                ? new StallSummary(0, 0, 0, 0)
                : new StallSummary(Ms(stalls.GetValueAtPercentile(50)), Ms(stalls.GetValueAtPercentile(99)), Ms(stalls.GetMaxValue()), stalls.TotalCount),
            Writeback = new WritebackReport(
                wbAfter.Pages - wbBefore.Pages, wbAfter.Commands - wbBefore.Commands,
                wbAfter.CrcComputed - wbBefore.CrcComputed, wbAfter.CrcReused - wbBefore.CrcReused,
                wbAfter.BounceCopies - wbBefore.BounceCopies, wbAfter.Retries - wbBefore.Retries,
                wbAfter.Throttled - wbBefore.Throttled,
                new IoLatency(Math.Round(wbAfter.IoLatencyP50Ms, 3), Math.Round(wbAfter.IoLatencyP99Ms, 3))),
            Disk = new DiskReport(
                diskAfter.Sum(d => d.SectorsWritten) - diskBefore.Sum(d => d.SectorsWritten),
                new Rejections(
                    diskAfter.Sum(d => d.RejectedGuard) - diskBefore.Sum(d => d.RejectedGuard),
                    diskAfter.Sum(d => d.RejectedApp) - diskBefore.Sum(d => d.RejectedApp),
                    diskAfter.Sum(d => d.RejectedRef) - diskBefore.Sum(d => d.RejectedRef)),
                options.VerifyOnDisk && volume.VerifyOnDisk,
                Math.Round(diskAfter.Sum(d => d.VerifyMs) - diskBefore.Sum(d => d.VerifyMs), 3)),
            Durability = ping ? null : Durability(wbBefore, wbAfter, diskBefore, diskAfter, Live.Writes + Live.Stores),
            Verify = verify,
            Images = diskAfter.Select(d => d.ImagePath).ToList(),
            Errors = errors.Take(50).ToList(),
            Timeline = buckets.Take(Math.Min(buckets.Length, (int)Math.Ceiling(elapsed) + 1)).Select((h, i) => new TimelinePoint(i, h.TotalCount, h.TotalCount == 0 ? 0 : Ms(h.GetValueAtPercentile(99))))
                .Where(t => t.Second < (int)elapsed).ToList(), // whole seconds only
            TagsAtCopyIn = volume.TagsAtCopyIn,
            VersionTags = volume.VersionTags,
            Faults = faults,
            Mirror = mirror,
            Chaos = chaos is null ? null : new ChaosReport(chaos.Kills, chaos.Restarts, model.SyncedLost, model.UnsyncedLost,
                chaos.Killed, model.Reactivations, Interlocked.Read(ref _lossReports), Interlocked.Read(ref _fsyncFailures), Interlocked.Read(ref _retried),
                chaos.Restarts == 0 ? 0 : Interlocked.Read(ref Live.Writes) + Interlocked.Read(ref Live.Stores) - chaos.WritesAtLastRestart,
                chaos.Kind == ChaosKind.PowerLoss ? "power-loss" : "kill-silo", chaos.PowerLosses, Interlocked.Read(ref _falseLossReports), [.. _falseLossDetails]),
        };
    }

    private long _retried, _fsyncFailures, _lossReports, _falseLossReports;
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _falseLossDetails = new(); // the model's view of the first false reports

    private static DurabilityReport Durability(WritebackStats wbBefore, WritebackStats wbAfter, DiskStats[] diskBefore, DiskStats[] diskAfter, long writes)
    {
        long commits = wbAfter.IntentCommits - wbBefore.IntentCommits
            + diskAfter.Sum(d => d.MetadataCommits) - diskBefore.Sum(d => d.MetadataCommits);
        long flushes = diskAfter.Sum(d => d.Flushes) - diskBefore.Sum(d => d.Flushes);
        double per1000(long n) => writes == 0 ? 0 : Math.Round(n * 1000.0 / writes, 2);
        commits = Math.Max(0, commits); // a disk that came back in a new activation restarts its counters
        flushes = Math.Max(0, flushes);
        return new DurabilityReport(commits, flushes, per1000(commits), per1000(flushes),
            diskAfter.Sum(d => d.StaleRefused) - diskBefore.Sum(d => d.StaleRefused),
            wbAfter.ExpiredWritebacks - wbBefore.ExpiredWritebacks);
    }

    /// <summary>
    /// Calls that may fail because a silo died: the cluster's own failures, not the storage's answers. Orleans also
    /// cancels a message whose target could not be placed while a silo was dying ("Message expired before placement
    /// could complete"); the run's own stop never cancels a call (calls take no token), so that is the cluster's too.
    /// </summary>
    private static bool Transient(Exception e) => e is TimeoutException || e is OrleansException || e is OperationCanceledException;

    /// <summary>How long a run may go on past its duration (and past <see cref="ChaosOverrun"/>) before it gives up.</summary>
    private static readonly TimeSpan GiveUpMargin = TimeSpan.FromMinutes(3);

    /// <summary>How long a run with a chaos kill count may go on past its duration for its kills and restarts.</summary>
    private static readonly TimeSpan ChaosOverrun = TimeSpan.FromMinutes(5);

    private long _giveUpAt = long.MaxValue;

    /// <summary>Past the run's bound: calls are no longer retried (see <see cref="RunAsync"/>).</summary>
    private bool GivenUp => Stopwatch.GetTimestamp() > _giveUpAt;

    /// <summary>
    /// The run ends after its duration; with a chaos kill count, not before every kill and restart happened and
    /// writes were acknowledged after the last one (events, not a clock: a slow machine runs longer, never less).
    /// A bound of <see cref="ChaosOverrun"/> past the duration keeps a cluster that stopped acknowledging from running
    /// for ever; the report then shows fewer kills than asked.
    /// </summary>
    private async Task EndRunAsync(CancellationTokenSource stop, ChaosMonkey? monkey, Func<long> acknowledged)
    {
        try
        {
            await Task.Delay(options.Duration, stop.Token);
            if (monkey is { Target: > 0 })
            {
                var bound = Stopwatch.StartNew();
                await Task.WhenAny(monkey.AllKilled, Task.Delay(ChaosOverrun, stop.Token));
                long after = Math.Max(1, (options.ChaosEveryWrites ?? 100) / 4);
                while (monkey.AllKilled.IsCompleted && acknowledged() < monkey.WritesAtLastRestart + after && bound.Elapsed < ChaosOverrun)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(5), stop.Token);
                }
            }
        }
        catch (OperationCanceledException)
        {
            return;
        }
        stop.Cancel();
    }

    /// <summary>
    /// With chaos, a call that failed because a silo died is tried again with backoff (a write with the same data
    /// until it is acknowledged, even after the run's end, so no write is left in doubt); without, it is called once.
    /// </summary>
    private async Task<T> CallAsync<T>(Func<Task<T>> call, Action? retried = null)
    {
        if (chaos is null)
        {
            return await call();
        }
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                return await call();
            }
            catch (Exception e) when (Transient(e) && attempt < 40 && !GivenUp)
            {
                Interlocked.Increment(ref _retried);
                retried?.Invoke();
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(2000, 25 << Math.Min(attempt, 7))), CancellationToken.None);
            }
        }
    }

    /// <summary>
    /// fsync of pages [0, <paramref name="pages"/>). Acknowledged: every write acknowledged before it was issued is
    /// durable (the model notes it). With chaos, an fsync that reports pages which lost writes with a silo, or that
    /// failed because a silo died, is counted (the caller does not take it for an error); the final one is tried
    /// until it succeeds.
    /// </summary>
    private async Task<FsyncResult> FsyncAsync(VolumeConfig volume, int pages, ContentModel model, bool final, FsyncHandle? handle = null)
    {
        IWritebackGrain flusher = client.Flusher(volume.Id);
        for (int attempt = 0; ; attempt++)
        {
            var mark = model.SyncMark();
            FsyncResult result;
            try
            {
                result = await CallAsync(() => flusher.Fsync(0, pages, handle?.Mark));
                if (handle is not null && result.Mark != default)
                {
                    handle.Mark = result.Mark; // told: the next fsync of this handle reports only newer errors
                }
            }
            catch (Exception e) when (chaos is not null && Transient(e) && !final)
            {
                Interlocked.Increment(ref _fsyncFailures);
                return new FsyncResult(false, 0, $"not answered: {e.Message}"); // nothing learnt
            }
            Interlocked.Increment(ref Live.Fsyncs);
            if (result.Durable)
            {
                if (chaos is not null)
                {
                    // A page whose silo died came back in a new activation, and its loss may have been recorded
                    // before this writer's handle opened, or by a flusher activation that died since (its errors
                    // went with it). Only the activations still there
                    // when this fsync returned are synced by it; the others are followed into their new activation.
                    var confirmed = new List<(int Page, long Activation, long Version)>();
                    foreach (var entry in model.NewIn(mark))
                    {
                        PageInfo info = await CallAsync(() => client.Page(volume.Id, entry.Page).GetInfo());
                        if (info.Activation == entry.Activation)
                        {
                            confirmed.Add(entry);
                        }
                        else
                        {
                            model.Observe(entry.Page, info.Activation, info.LoadedVersion);
                        }
                    }
                    mark = confirmed;
                }
                model.Synced(mark);
                return result;
            }
            if (chaos is null)
            {
                return result;
            }
            if (result.ReportsLoss)
            {
                Interlocked.Increment(ref _lossReports);
                // Each page named: followed into its new activation, and the report checked against what writers
                // were told (a page whose every acknowledged write came back is a false loss report).
                foreach (int page in result.LostPages!)
                {
                    PageInfo info = await CallAsync(() => client.Page(volume.Id, page).GetInfo());
                    model.Observe(page, info.Activation, info.LoadedVersion);
                    if (!model.LossJustified(page))
                    {
                        Interlocked.Increment(ref _falseLossReports);
                        if (_falseLossDetails.Count < 20)
                        {
                            _falseLossDetails.Enqueue(model.Describe(page));
                        }
                    }
                }
            }
            else
            {
                Interlocked.Increment(ref _fsyncFailures);
            }
            if (!final || attempt >= 10 || GivenUp)
            {
                return result;
            }
            await Task.Delay(TimeSpan.FromMilliseconds(200));
        }
    }

    private async Task WaitForSilosAsync(int silos, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                if ((await client.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true)).Count >= silos)
                {
                    return;
                }
            }
            catch (Exception e) when (Transient(e) && deadline.Elapsed < timeout)
            {
            }
            if (deadline.Elapsed > timeout)
            {
                throw new TimeoutException($"only some of the {silos} silos are active {timeout.TotalSeconds:F0} s after the last kill");
            }
            await Task.Delay(250);
        }
    }

    /// <summary>An fsync that failed only because of pages poisoned by injected memory corruption: a detection, not a run error.</summary>
    private bool ExplainedByFaults(FsyncResult result) =>
        _injector is not null && result.ReportsPoison;

    private FaultInjector? _injector;
    private IPageGrain[] _pages = [];
    private IPingGrain[] _pings = [];

    /// <summary>Runs an idempotent call up to three times when it times out or its silo is unavailable.</summary>
    private static async Task<T> RetryAsync<T>(Func<Task<T>> call)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                return await call();
            }
            catch (Exception e) when (attempt < 3 && e is TimeoutException or SiloUnavailableException)
            {
                await Task.Delay(TimeSpan.FromSeconds(attempt));
            }
        }
    }

    private static Task RetryAsync(Func<Task> call) => RetryAsync(async () =>
    {
        await call();
        return true;
    });

    private static double Ms(long us) => Math.Round(us / 1000.0, 3);

    private async Task WriterAsync(int writer, VolumeConfig volume, ContentModel model,
        Dictionary<string, LongConcurrentHistogram> latency, LongConcurrentHistogram stalls,
        LongConcurrentHistogram[] buckets, ConcurrentQueue<string> errors, CancellationToken stop)
    {
        var rng = new Random(options.Seed * 7919 + writer);
        var mappings = new Dictionary<int, long>();
        int sinceFsync = 0;
        // Each writer is a handle of its own (an open file): told of every writeback error recorded after it opened.
        var handle = new FsyncHandle();
        if (options.Workload != Workload.Ping)
        {
            handle.Mark = await CallAsync(() => client.Flusher(volume.Id).SampleErrors());
        }
        OperationMix mix = options.Mix;
        while (!stop.IsCancellationRequested)
        {
            int roll = rng.Next(100);
            int page = rng.Next(options.Pages);
            if (_injector?.IsRetired(page) == true)
            {
                continue; // a fault's page: left as the fault made it until it is read back
            }
            long start = Stopwatch.GetTimestamp();
            string kind;
            try
            {
                if (options.Workload == Workload.Ping)
                {
                    kind = "ping";
                    await _pings[page].Ping(writer);
                    Interlocked.Increment(ref Live.Pings);
                }
                else if (roll < mix.Write + mix.Store)
                {
                    bool store = roll >= mix.Write;
                    kind = store ? "store" : "write";
                    if (!await WriteAsync(volume, page, store, rng, mappings, model, stalls, stop))
                    {
                        continue; // refused until the run ended: never acknowledged, not in the model
                    }
                    if (_injector is not null)
                    {
                        await _injector.AfterWriteAsync(page, rng);
                    }
                }
                else
                {
                    kind = "read";
                    int size = rng.Next(options.WriteSizeMin, options.WriteSizeMax + 1);
                    int at = rng.Next(0, VolumeConfig.PageSize - size + 1);
                    await CallAsync(() => _pages[page].Read(at, size));
                    Interlocked.Increment(ref Live.Reads);
                }
                Record(kind, start, latency, buckets);
                if (options.FsyncEvery > 0 && ++sinceFsync >= options.FsyncEvery && options.Workload != Workload.Ping)
                {
                    sinceFsync = 0;
                    long t0 = Stopwatch.GetTimestamp();
                    FsyncResult f = await FsyncAsync(volume, options.Pages, model, final: false, handle);
                    if (!f.Durable && !ExplainedByFaults(f) && chaos is null) // with chaos: counted by FsyncAsync
                    {
                        errors.Enqueue($"fsync: {f.Error}");
                        Interlocked.Increment(ref Live.Errors);
                    }
                    Record("fsync", t0, latency, buckets);
                }
            }
            catch (StorageException e) when (e.Error == StorageError.IntegrityError && _injector is not null)
            {
                // EIO on a page a fault hit: a detection. The application rewrites the whole page, as one would.
                Interlocked.Increment(ref Live.Detected);
                _injector.Detected(page);
                try
                {
                    await WriteAsync(volume, page, store: false, rng, mappings, model, stalls, stop, whole: true);
                }
                catch (StorageException again) when (again.Error == StorageError.IntegrityError)
                {
                    // The page cannot even load (a lost write found on reactivation): reported at verification.
                }
            }
            catch (Exception e) when (!stop.IsCancellationRequested || e is not OperationCanceledException)
            {
                Interlocked.Increment(ref Live.Errors);
                if (errors.Count < 100)
                {
                    errors.Enqueue($"writer {writer}, page {page}: {e.GetType().Name}: {e.Message}");
                }
            }
        }
    }

    private void Record(string kind, long start, Dictionary<string, LongConcurrentHistogram> latency, LongConcurrentHistogram[] buckets)
    {
        long us = Math.Clamp((long)Stopwatch.GetElapsedTime(start).TotalMicroseconds, 1, MaxLatencyUs);
        latency[kind].RecordValue(us);
        int second = (int)Clock.Elapsed.TotalSeconds;
        if (second < buckets.Length)
        {
            buckets[second].RecordValue(us);
        }
    }

    /// <summary>One write or store, retried while refused (unless holding was asked for). False when the run ended first.</summary>
    private async Task<bool> WriteAsync(VolumeConfig volume, int page, bool store, Random rng, Dictionary<int, long> mappings,
        ContentModel model, LongConcurrentHistogram stalls, CancellationToken stop, bool whole = false)
    {
        int size = whole ? VolumeConfig.PageSize : rng.Next(options.WriteSizeMin, options.WriteSizeMax + 1);
        int offset = whole ? 0 : rng.Next(0, VolumeConfig.PageSize - size + 1);
        byte[] data = Fill(new byte[size], rng);
        IPageGrain grain = _pages[page];
        long firstRefusal = 0;
        while (true)
        {
            WriteResult r;
            if (store)
            {
                if (!mappings.TryGetValue(page, out long map))
                {
                    map = await CallAsync(() => grain.Map(writable: true));
                    mappings[page] = map;
                }
                try
                {
                    long sentTo = model.ActivationOf(page);
                    r = await CallAsync(() => grain.Store(map, offset, data, options.Wait), () => model.InDoubt(page, sentTo));
                }
                catch (StorageException e) when (e.Error == StorageError.UnknownMapping)
                {
                    mappings.Remove(page); // the page was reactivated and lost its mappings: map again
                    continue;
                }
            }
            else
            {
                long sentTo = model.ActivationOf(page);
                r = await CallAsync(() => grain.Write(offset, data, options.Wait), () => model.InDoubt(page, sentTo));
            }
            if (r.Status == WriteStatus.Ok)
            {
                model.Acknowledge(page, r.Version, offset, data, r.Activation, r.LoadedVersion);
                Interlocked.Increment(ref store ? ref Live.Stores : ref Live.Writes);
                Interlocked.Add(ref Live.Bytes, size);
                double stallMs = firstRefusal != 0 ? Stopwatch.GetElapsedTime(firstRefusal).TotalMilliseconds : r.StallMs;
                if (stallMs > 0)
                {
                    stalls.RecordValue(Math.Clamp((long)(stallMs * 1000), 1, MaxLatencyUs));
                }
                return true;
            }
            Interlocked.Increment(ref Live.Refused);
            if (firstRefusal == 0)
            {
                firstRefusal = Stopwatch.GetTimestamp();
            }
            if (stop.IsCancellationRequested)
            {
                return false;
            }
            await Task.Delay(1, CancellationToken.None); // EAGAIN: back off a little, then try again
        }
    }

    /// <summary>
    /// Content of a write: a random 64-bit pattern repeated, with its first 8 bytes random too. Every write is
    /// distinct (a misplaced or lost write shows in the read-back) and filling is a vectorized call, so the
    /// generator spends its cores on calls, not on random bytes.
    /// </summary>
    internal static byte[] Fill(byte[] data, Random rng)
    {
        Span<byte> tail = data.AsSpan(data.Length & ~7);
        rng.NextBytes(tail);
        System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(data.AsSpan(0, data.Length & ~7)).Fill(rng.NextInt64() | 1);
        rng.NextBytes(data.AsSpan(0, Math.Min(8, data.Length)));
        return data;
    }

    /// <summary>What the read-back found on one page: the cache and the disk against the model, and any check that fired.</summary>
    private sealed record PageOutcome(int Page, bool CacheDiffers, bool DiskDiffers, string? IntegrityError);

    /// <summary>
    /// Reads every touched page back from the page cache and from its disk through the page (which checks the
    /// versions in the application tags too) and compares each byte with the model.
    /// </summary>
    private async Task<PageOutcome[]> VerifyAsync(VolumeConfig volume, ContentModel model)
    {
        var outcomes = new ConcurrentBag<PageOutcome>();
        await ForEachAsync(model.TouchedPages.ToList(), 32, async p =>
        {
            IPageGrain grain = client.Page(volume.Id, p);
            // The page as it is now: if it came back in a new activation, its unsynced writes went with the old one.
            PageInfo info = await CallAsync(() => grain.GetInfo());
            model.Observe(p, info.Activation, info.LoadedVersion);
            byte[] expected = model.Expected(p);
            bool cacheDiffers = false, diskDiffers = false;
            var reported = new List<string>();
            try
            {
                cacheDiffers = !(await CallAsync(() => grain.Read(0, VolumeConfig.PageSize))).AsSpan().SequenceEqual(expected);
            }
            catch (StorageException e) when (e.Error == StorageError.IntegrityError)
            {
                reported.Add("cache: " + e.Message);
            }
            try
            {
                diskDiffers = !(await CallAsync(() => grain.ReadDurable())).AsSpan().SequenceEqual(expected);
            }
            catch (StorageException e) when (e.Error == StorageError.IntegrityError)
            {
                reported.Add("disk: " + e.Message);
            }
            outcomes.Add(new PageOutcome(p, cacheDiffers, diskDiffers, reported.Count == 0 ? null : string.Join("; ", reported)));
        });
        return [.. outcomes.OrderBy(o => o.Page)];
    }

    private async Task<DiskStats[]> DiskStatsAsync(VolumeConfig volume) =>
        await Task.WhenAll(Enumerable.Range(0, volume.Disks).Select(d => client.Disk(volume.Id, d).GetStats()));

    private static async Task ForEachAsync<T>(IEnumerable<T> items, int parallelism, Func<T, Task> body)
    {
        await Parallel.ForEachAsync(items, new ParallelOptions { MaxDegreeOfParallelism = parallelism }, async (item, _) => await body(item));
    }
}

/// <summary>A writer's open of the volume: the mark of the error sequence it has been told up to (errseq).</summary>
internal sealed class FsyncHandle
{
    public ErrorMark? Mark { get; set; }
}

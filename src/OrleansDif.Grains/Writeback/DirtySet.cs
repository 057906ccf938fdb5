namespace OrleansDif.Grains;

/// <summary>
/// The flusher's view of the page cache's dirty tags: pages dirty (and since when, in the caller's clock ticks) and
/// pages in a writeback run (with the run's completion). A page is in at most one of the two; a page is never in two
/// runs at once. Plain: no Orleans types, no clock reads.
/// </summary>
public sealed class DirtySet
{
    private readonly Dictionary<int, long> _dirty = [];        // page -> when it was marked dirty
    private readonly Dictionary<int, Task> _inFlight = [];     // page -> the writeback run it is in

    public int DirtyCount => _dirty.Count;
    public IEnumerable<int> Dirty => _dirty.Keys;
    public IEnumerable<int> InFlight => _inFlight.Keys;

    /// <summary>Pages dirty or in flight (what a writeback count reports).</summary>
    public int Pending => _dirty.Keys.Union(_inFlight.Keys).Count();

    public bool IsDirty(int page) => _dirty.ContainsKey(page);
    public bool IsInFlight(int page) => _inFlight.ContainsKey(page);

    /// <summary>Marks a page dirty; a page dirty already keeps its age.</summary>
    public void MarkDirty(int page, long now) => _dirty.TryAdd(page, now);

    /// <summary>The page was written elsewhere (eviction hand-over): no longer dirty.</summary>
    public void Remove(int page) => _dirty.Remove(page);

    /// <summary>The runs under way that carry any of <paramref name="pages"/>.</summary>
    public Task[] RunsCarrying(IEnumerable<int> pages) =>
        pages.Where(_inFlight.ContainsKey).Select(p => _inFlight[p]).Distinct().ToArray();

    /// <summary>Dirty pages not in a run.</summary>
    public List<int> NotInFlight() => _dirty.Keys.Where(p => !_inFlight.ContainsKey(p)).ToList();

    /// <summary>
    /// Every dirty page of each stripe unit that holds a page dirty for at least <paramref name="age"/> ticks and not in
    /// flight. Clustering as write_cache_pages does: with an aged page go the dirty pages contiguous with it on its disk,
    /// so one command carries them all.
    /// </summary>
    public List<int> AgedUnits(long now, long age, int stripePages)
    {
        var units = _dirty.Where(kv => now - kv.Value >= age && !_inFlight.ContainsKey(kv.Key))
            .Select(kv => kv.Key / stripePages).ToHashSet();
        return units.Count == 0 ? [] : _dirty.Keys.Where(p => units.Contains(p / stripePages)).ToList();
    }

    /// <summary>
    /// Splits <paramref name="pages"/> (those not in flight, each once) into runs of contiguous LBAs on one disk, at most
    /// <paramref name="maxRunPages"/> long: one disk command each.
    /// </summary>
    public List<(int Disk, List<int> Pages)> PlanRuns(IEnumerable<int> pages, VolumeConfig config, int maxRunPages)
    {
        var runs = new List<(int Disk, List<int> Pages)>();
        foreach (var group in pages.Where(p => !_inFlight.ContainsKey(p)).Distinct()
                     .Select(p => (Page: p, Loc: config.Locate(p)))
                     .GroupBy(x => x.Loc.Disk))
        {
            List<int>? run = null;
            long nextLba = -1;
            foreach (var x in group.OrderBy(x => x.Loc.Lba))
            {
                if (run is null || x.Loc.Lba != nextLba || run.Count == maxRunPages)
                {
                    run = [];
                    runs.Add((group.Key, run));
                }
                run.Add(x.Page);
                nextLba = x.Loc.Lba + config.SectorsPerPage;
            }
        }
        return runs;
    }

    /// <summary>
    /// The runs of <see cref="PlanRuns"/> grouped per disk into batches of at most <paramref name="maxBatchPages"/>
    /// pages (a run longer than that is a batch of its own): one disk call each, carrying one command per run (as the
    /// block layer's plug hands a driver many requests at once).
    /// </summary>
    public List<(int Disk, List<List<int>> Runs)> PlanBatches(IEnumerable<int> pages, VolumeConfig config, int maxRunPages, int maxBatchPages)
    {
        var batches = new List<(int Disk, List<List<int>> Runs)>();
        foreach (var group in PlanRuns(pages, config, maxRunPages).GroupBy(r => r.Disk))
        {
            List<List<int>>? batch = null;
            int size = 0;
            foreach (var (_, run) in group)
            {
                if (batch is null || size + run.Count > maxBatchPages)
                {
                    batch = [];
                    size = 0;
                    batches.Add((group.Key, batch));
                }
                batch.Add(run);
                size += run.Count;
            }
        }
        return batches;
    }

    /// <summary>Dirty → in flight, in the run that completes <paramref name="done"/>.</summary>
    public void Start(List<int> run, Task done)
    {
        foreach (int p in run)
        {
            _dirty.Remove(p);
            _inFlight[p] = done;
        }
    }

    /// <summary>The run that completes <paramref name="done"/> ended: its pages leave flight (pages dirty again were marked).</summary>
    public void Finish(List<int> run, Task done)
    {
        foreach (int p in run)
        {
            if (_inFlight.TryGetValue(p, out Task? t) && t == done)
            {
                _inFlight.Remove(p);
            }
        }
    }
}

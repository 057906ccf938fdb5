using System.Collections.Concurrent;

namespace OrleansDif.LoadGenerator;

/// <summary>
/// The client's own model of the acknowledged writes. Per page: the content and version it had when the run
/// began, then every acknowledged write or store with the version the page grain gave it; the expected content
/// is the base with every write applied in version order.
/// <para>
/// Each acknowledgement names the page activation that made it and the version that activation loaded from the
/// disk. When a page comes back in a new activation (its silo was killed), the writes of the old one newer than
/// the loaded version are gone: counted as unsynced losses (allowed, as after a kernel crash) and dropped from
/// the model. Writes an acknowledged fsync covered must never be among them: those are counted as synced losses.
/// </para>
/// <para>
/// Memory: without <c>keepUnsynced</c> writes are folded into the content as soon as the versions before them
/// are known; with it (runs where silos die) only up to the last version an fsync made durable, since a newer
/// write may still have to be taken back.
/// </para>
/// </summary>
public sealed class ContentModel(bool keepUnsynced = false)
{
    private readonly ConcurrentDictionary<int, PageModel> _pages = new();
    private long _unsyncedLost;
    private long _syncedLost;
    private long _reactivations;
    private readonly ConcurrentQueue<string> _violations = new();

    private sealed class PageModel
    {
        public byte[] Content = new byte[VolumeConfig.PageSize];
        public long Folded;                                               // Content = base + writes up to here
        public long Activation;                                           // the activation the model follows
        public long Latest;                                               // highest acknowledged version of it
        public long Synced;                                               // highest version an fsync made durable
        public readonly SortedDictionary<long, (int Offset, byte[] Data)> Writes = [];
        public readonly Dictionary<long, long> Retired = [];              // old activation -> version its successor loaded
        public readonly Dictionary<long, long> RetiredLatest = [];        // old activation -> its highest acknowledged version
        public readonly HashSet<long> InDoubt = [];                       // activations a write went to and got no answer from
        public int Acknowledged;
    }

    /// <summary>Acknowledged writes lost with a killed silo before any fsync covered them.</summary>
    public long UnsyncedLost => Interlocked.Read(ref _unsyncedLost);

    /// <summary>Acknowledged writes lost although an acknowledged fsync covered them: must be 0.</summary>
    public long SyncedLost => Interlocked.Read(ref _syncedLost);

    /// <summary>Times a page came back in a new activation that the model followed.</summary>
    public long Reactivations => Interlocked.Read(ref _reactivations);

    /// <summary>What each synced loss was, for the report's errors.</summary>
    public IReadOnlyCollection<string> Violations => _violations;

    /// <summary>The page's content and version before the run (and the activation that had them, when known).</summary>
    public void SetBase(int page, byte[] content, long version, long activation = 0)
    {
        if (content.Length != VolumeConfig.PageSize)
        {
            throw new ArgumentException($"page content must be {VolumeConfig.PageSize} bytes", nameof(content));
        }
        PageModel model = _pages.GetOrAdd(page, _ => new PageModel());
        lock (model)
        {
            model.Content = (byte[])content.Clone();
            model.Folded = model.Latest = model.Synced = version;
            model.Activation = activation;
        }
    }

    /// <summary>
    /// Records an acknowledged write of activation <paramref name="activation"/>, which loaded
    /// <paramref name="loadedVersion"/> from the disk. Two writes with one version in one activation is a broken page grain.
    /// </summary>
    public void Acknowledge(int page, long version, int offset, byte[] data, long activation = 0, long loadedVersion = 0)
    {
        if (offset < 0 || data.Length == 0 || offset + data.Length > VolumeConfig.PageSize)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"write of {data.Length} bytes at {offset} is outside a page");
        }
        PageModel model = _pages.GetOrAdd(page, _ => new PageModel());
        lock (model)
        {
            if (activation != 0 && model.Activation != activation)
            {
                if (model.Retired.TryGetValue(activation, out long successorLoaded))
                {
                    // A late acknowledgement of an activation already replaced: kept only if it reached the disk.
                    if (version > successorLoaded)
                    {
                        model.Acknowledged++;
                        model.RetiredLatest[activation] = Math.Max(model.RetiredLatest.GetValueOrDefault(activation), version);
                        Interlocked.Increment(ref _unsyncedLost);
                        return;
                    }
                }
                else
                {
                    Follow(page, model, activation, loadedVersion);
                }
            }
            if (version <= model.Folded || !model.Writes.TryAdd(version, (offset, data)))
            {
                throw new InvalidOperationException($"page {page}: version {version} acknowledged twice");
            }
            model.Acknowledged++;
            if (model.Activation == activation || activation == 0)
            {
                model.Latest = Math.Max(model.Latest, version);
            }
            Fold(model);
        }
    }

    /// <summary>
    /// A write to <paramref name="page"/> got no answer (its silo died) and is tried again: the activation the model
    /// follows may have applied and acknowledged it, the answer lost on its way. A loss report for that activation is
    /// then borne out whatever the writers were told.
    /// </summary>
    public void InDoubt(int page, long sentTo = 0)
    {
        PageModel model = _pages.GetOrAdd(page, _ => new PageModel());
        lock (model)
        {
            model.InDoubt.Add(model.Activation);
            if (sentTo != 0)
            {
                // The activation the model followed when the write was sent: the model may have moved on since
                // (another writer saw the page come back) while this write's answer was lost with that activation.
                model.InDoubt.Add(sentTo);
            }
        }
    }

    /// <summary>The activation of <paramref name="page"/> the model follows now (0: none seen yet).</summary>
    public long ActivationOf(int page)
    {
        PageModel model = _pages.GetOrAdd(page, _ => new PageModel());
        lock (model)
        {
            return model.Activation;
        }
    }

    /// <summary>The page as it is now (read before verification): follows it into a new activation.</summary>
    public void Observe(int page, long activation, long loadedVersion)
    {
        PageModel model = _pages.GetOrAdd(page, _ => new PageModel());
        lock (model)
        {
            if (activation != 0 && model.Activation != activation && !model.Retired.ContainsKey(activation))
            {
                Follow(page, model, activation, loadedVersion);
            }
        }
    }

    /// <summary>
    /// Whether a report that <paramref name="page"/> lost acknowledged writes is borne out: some earlier activation of
    /// it had acknowledged a version its successor did not load, or had a write in doubt (<see cref="InDoubt"/>).
    /// False: the report named a page whose every acknowledged write is on the disk (a false loss report).
    /// </summary>
    public bool LossJustified(int page)
    {
        PageModel model = _pages.GetOrAdd(page, _ => new PageModel());
        lock (model)
        {
            return model.Retired.Any(r => model.RetiredLatest.GetValueOrDefault(r.Key) > r.Value || model.InDoubt.Contains(r.Key));
        }
    }

    /// <summary>What the model knows of <paramref name="page"/>'s activations, for a report's details.</summary>
    public string Describe(int page)
    {
        PageModel model = _pages.GetOrAdd(page, _ => new PageModel());
        lock (model)
        {
            string retired = string.Join(", ", model.Retired.Select(r =>
                $"{r.Key}: acknowledged {PageVersion.Format(model.RetiredLatest.GetValueOrDefault(r.Key))}, next loaded {PageVersion.Format(r.Value)}{(model.InDoubt.Contains(r.Key) ? ", a write in doubt" : "")}"));
            return $"page {page}: now activation {model.Activation} at {PageVersion.Format(model.Latest)}; earlier: {(retired.Length == 0 ? "none" : retired)}";
        }
    }

    /// <summary>Per page, the activation and newest acknowledged version when an fsync is issued.</summary>
    public IReadOnlyList<(int Page, long Activation, long Version)> SyncMark() =>
        _pages.Select(kv =>
        {
            lock (kv.Value)
            {
                return (kv.Key, kv.Value.Activation, kv.Value.Latest);
            }
        }).ToList();

    /// <summary>The entries of <paramref name="mark"/> that would make something durable the model does not know as such.</summary>
    public IReadOnlyList<(int Page, long Activation, long Version)> NewIn(IReadOnlyList<(int Page, long Activation, long Version)> mark) =>
        mark.Where(m =>
        {
            PageModel model = _pages[m.Page];
            lock (model)
            {
                return m.Version > model.Synced;
            }
        }).ToList();

    /// <summary>An fsync issued at <paramref name="mark"/> was acknowledged: every write in the mark is durable.</summary>
    public void Synced(IReadOnlyList<(int Page, long Activation, long Version)> mark)
    {
        foreach (var (page, activation, version) in mark)
        {
            PageModel model = _pages[page];
            lock (model)
            {
                if (model.Activation == activation)
                {
                    model.Synced = Math.Max(model.Synced, version);
                    Fold(model);
                }
                else if (model.Retired.TryGetValue(activation, out long successorLoaded) && successorLoaded < version)
                {
                    // The page came back without writes this fsync had made durable.
                    Lost(version - successorLoaded, $"page {page}: an acknowledged fsync covered version {version}, the page came back at {successorLoaded}");
                }
            }
        }
    }

    private void Follow(int page, PageModel model, long activation, long loaded)
    {
        if (model.Activation != 0)
        {
            Interlocked.Increment(ref _reactivations);
            if (loaded < model.Synced)
            {
                Lost(model.Synced - loaded, $"page {page}: came back at version {loaded}, an acknowledged fsync had made {model.Synced} durable (activation {model.Activation} -> {activation})");
            }
            foreach (long v in model.Writes.Keys.Where(v => v > loaded).ToList())
            {
                model.Writes.Remove(v);
                Interlocked.Increment(ref _unsyncedLost);
            }
            if (model.Folded > loaded && loaded >= model.Synced)
            {
                // Folded already (a model that keeps no unsynced writes): lost all the same, and not taken back.
                Interlocked.Add(ref _unsyncedLost, model.Folded - loaded);
            }
            model.Retired[model.Activation] = loaded;
            model.RetiredLatest[model.Activation] = model.Latest;
            model.Synced = Math.Min(model.Synced, loaded);
            model.Latest = loaded;
        }
        model.Activation = activation;
        Fold(model);
    }

    private void Lost(long writes, string what)
    {
        Interlocked.Add(ref _syncedLost, writes);
        if (_violations.Count < 50)
        {
            _violations.Enqueue(what);
        }
    }

    private void Fold(PageModel model)
    {
        while (model.Writes.Count > 0)
        {
            var (version, (offset, data)) = model.Writes.First();
            bool next = keepUnsynced ? version <= model.Synced : version == model.Folded + 1;
            if (!next)
            {
                break;
            }
            data.CopyTo(model.Content, offset);
            model.Folded = version;
            model.Writes.Remove(version);
        }
    }

    public IEnumerable<int> TouchedPages => _pages.Where(kv => kv.Value.Acknowledged > 0).Select(kv => kv.Key).OrderBy(p => p);

    public int AcknowledgedWrites => _pages.Values.Sum(m => { lock (m) { return m.Acknowledged; } });

    /// <summary>Writes not folded yet (without keepUnsynced: waiting for an earlier version; an acknowledgement that never came leaves a gap).</summary>
    public int PendingWrites => _pages.Values.Sum(m => { lock (m) { return m.Writes.Count; } });

    /// <summary>The content page <paramref name="page"/> must have once every acknowledged write is applied.</summary>
    public byte[] Expected(int page)
    {
        if (!_pages.TryGetValue(page, out PageModel? model))
        {
            return new byte[VolumeConfig.PageSize];
        }
        lock (model)
        {
            byte[] content = (byte[])model.Content.Clone();
            foreach (var (offset, data) in model.Writes.Values)
            {
                data.CopyTo(content, offset);
            }
            return content;
        }
    }
}

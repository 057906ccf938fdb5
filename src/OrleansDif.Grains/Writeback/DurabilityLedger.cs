namespace OrleansDif.Grains;

/// <summary>
/// What one flusher activation knows of durability, per page activation (page, epoch): the acknowledged writes it
/// was told of that are in no landed command (<em>owed</em>), the last version that landed on a disk, what landed in
/// each disk's cache and is not flushed yet, and the version of each page known to be on the medium. A plain class
/// with no Orleans types: the writeback grain asks it every decision about loss and durability, and it is
/// unit-tested transition by transition.
/// </summary>
public sealed class DurabilityLedger(long incarnation)
{
    private readonly Dictionary<(int Page, long Epoch), (long Version, long Generation, long AckTable)> _owed = [];
    private readonly Dictionary<(int Page, long Epoch), long> _landed = [];
    private readonly Dictionary<(int Page, long Epoch), long> _paidGeneration = []; // the latest registration a landed command carried
    private readonly Dictionary<int, Dictionary<int, (long Version, long Boot)>> _unflushed = [];
    private readonly Dictionary<int, long> _durable = [];
    private readonly HashSet<int> _flushRequested = [];

    /// <summary>This flusher activation, as pages record it in their write intents.</summary>
    public long Incarnation { get; } = incarnation;

    /// <summary>Pages with anything owed or landed-unflushed: an fsync must cover them.</summary>
    public IEnumerable<int> PendingPages => _owed.Keys.Select(k => k.Page).Concat(_unflushed.Values.SelectMany(d => d.Keys)).Distinct();

    /// <summary>The version of <paramref name="page"/> known to be on the medium (0: none known).</summary>
    public long Durable(int page) => _durable.GetValueOrDefault(page);

    /// <summary>The last version of activation <paramref name="epoch"/> of <paramref name="page"/> that landed on a disk (flushed or not; 0: none).</summary>
    public long LandedVersion(int page, long epoch) => _landed.GetValueOrDefault((page, epoch));

    /// <summary>Whether a landed version of <paramref name="page"/> still waits for its disk's flush.</summary>
    public bool Unflushed(int page) => _unflushed.Values.Any(d => d.ContainsKey(page));

    /// <summary>
    /// A page registered an acknowledged write: <paramref name="version"/> of its activation, its
    /// <paramref name="generation"/>-th registration. Owed until a command carrying a later registration lands.
    /// </summary>
    public void Registered(int page, long version, long generation, long ackTable = 0)
    {
        var key = (page, PageVersion.EpochOf(version));
        if (_paidGeneration.GetValueOrDefault(key) >= generation)
        {
            return; // a registration that arrives after a command carrying it landed (the flusher interleaves calls): paid already
        }
        if (!_owed.TryGetValue(key, out var owed) || owed.Generation < generation)
        {
            _owed[key] = (version, generation, ackTable);
        }
    }

    /// <summary>
    /// A command carrying <paramref name="version"/> of a page (snapshot of its <paramref name="generation"/>-th
    /// registration) landed in the cache of <paramref name="disk"/>, activation <paramref name="boot"/>.
    /// </summary>
    public void Landed(int page, int disk, long version, long generation, long boot)
    {
        Paid(page, version, generation);
        if (!_unflushed.TryGetValue(disk, out var pending))
        {
            _unflushed[disk] = pending = [];
        }
        if (!pending.TryGetValue(page, out var before) || before.Version <= version)
        {
            pending[page] = (version, boot);
        }
    }

    /// <summary>A command carrying <paramref name="version"/> landed and its disk was flushed in one step (eviction).</summary>
    public void LandedDurably(int page, long version, long generation)
    {
        Paid(page, version, generation);
        Flushed(page, version);
    }

    /// <summary>
    /// The same for a command sent with its disk's flush behind it: what landed on that disk before
    /// (<paramref name="covered"/>, taken by <see cref="TakeUnflushed"/> for that flush) is superseded on the medium
    /// for this page, whatever happened to it, and is dropped from what the flush settles.
    /// </summary>
    public void LandedDurably(int page, long version, long generation, Dictionary<int, (long Version, long Boot)> covered)
    {
        LandedDurably(page, version, generation);
        if (covered.TryGetValue(page, out var before) && before.Version <= version)
        {
            covered.Remove(page);
        }
    }

    private void Paid(int page, long version, long generation)
    {
        var key = (page, PageVersion.EpochOf(version));
        if (_owed.TryGetValue(key, out var owed) && owed.Generation <= generation)
        {
            _owed.Remove(key);
        }
        _paidGeneration[key] = Math.Max(_paidGeneration.GetValueOrDefault(key), generation);
        _landed[key] = Math.Max(_landed.GetValueOrDefault(key), version);
    }

    private void Flushed(int page, long version) => _durable[page] = Math.Max(Durable(page), version);

    /// <summary>
    /// A page written back by another flusher activation, into the cache of <paramref name="disk"/> activation
    /// <paramref name="boot"/>: the next flush of that disk settles it.
    /// </summary>
    public void Adopt(int page, int disk, long version, long boot)
    {
        if (!_unflushed.TryGetValue(disk, out var pending))
        {
            _unflushed[disk] = pending = [];
        }
        pending.TryAdd(page, (version, boot));
    }

    /// <summary>An fsync needs <paramref name="disk"/> flushed though this activation may have landed nothing there.</summary>
    public void RequestFlush(int disk) => _flushRequested.Add(disk);

    /// <summary>Takes the disks to flush now, each with the landed versions that flush settles.</summary>
    public List<(int Disk, Dictionary<int, (long Version, long Boot)> Pages)> TakeFlushWork()
    {
        var work = _unflushed.Where(kv => kv.Value.Count > 0).Select(kv => (Disk: kv.Key, Pages: kv.Value)).ToList();
        foreach (var (disk, _) in work)
        {
            _unflushed[disk] = [];
        }
        foreach (int disk in _flushRequested.Where(d => work.All(w => w.Disk != d)).ToList())
        {
            work.Add((disk, []));
        }
        _flushRequested.Clear();
        return work;
    }

    /// <summary>
    /// Takes what landed in the cache of <paramref name="disk"/> and waits for its flush: a flush about to be sent
    /// there settles it (<see cref="FlushAnswered"/> with what was taken, or with null to give it back when the
    /// flush did not answer).
    /// </summary>
    public Dictionary<int, (long Version, long Boot)> TakeUnflushed(int disk)
    {
        if (!_unflushed.TryGetValue(disk, out var pending) || pending.Count == 0)
        {
            return [];
        }
        _unflushed[disk] = [];
        _flushRequested.Remove(disk);
        return pending;
    }

    /// <summary>
    /// A flush of <paramref name="disk"/> answered from activation <paramref name="boot"/> (null: it did not answer).
    /// Returns the pages whose landed version was in a cache the disk lost (another boot): written again if their
    /// activation still holds them.
    /// </summary>
    public List<(int Page, long Version)> FlushAnswered(int disk, Dictionary<int, (long Version, long Boot)> pages, long? boot)
    {
        var lost = new List<(int Page, long Version)>();
        foreach (var (page, (version, landedOn)) in pages)
        {
            if (boot is null)
            {
                // Not flushed: still owed a flush.
                if (!_unflushed.TryGetValue(disk, out var now))
                {
                    _unflushed[disk] = now = [];
                }
                if (!now.TryGetValue(page, out var later) || later.Version < version)
                {
                    now[page] = (version, landedOn);
                }
            }
            else if (boot == landedOn)
            {
                Flushed(page, version);
            }
            else
            {
                var key = (page, PageVersion.EpochOf(version));
                _landed.Remove(key);
                _owed.TryAdd(key, (version, 0, 0)); // owed again: the page's acknowledged writes are on no disk
                lost.Add((page, version));
            }
        }
        return lost;
    }

    /// <summary>
    /// Did activation <paramref name="epoch"/> of a page die holding acknowledged writes that are on no disk? When the
    /// page's acknowledgement table says what that activation acknowledged last (<paramref name="lastAcknowledged"/>:
    /// a version, 0 for nothing), exactly that: lost if it is more than the next activation found
    /// (<paramref name="loadedVersion"/>). Else, when the volume's dirty log says where that activation's last dirty
    /// period began (<paramref name="periodStart"/>: a version, 0 for no period), exactly that too: lost if the period
    /// began after what the next activation found (see <see cref="PageMachine.PeriodStart"/>). Else, when that
    /// activation registered with this flusher activation
    /// (<paramref name="flusher"/>), by what it registered (a write is registered before it is acknowledged, so this
    /// may name a write never acknowledged): lost if writes were owed, or if what landed is more than the next
    /// activation found. Else nobody can say (-1, and another flusher's knowledge died with it): yes (conservative).
    /// Forgets the activation either way.
    /// </summary>
    public bool JudgeLoss(int page, long epoch, long flusher, long loadedVersion, long lastAcknowledged = -1, long periodStart = -1)
    {
        bool owed = _owed.Remove((page, epoch));
        bool short_ = _landed.Remove((page, epoch), out long landed) && loadedVersion < landed;
        _paidGeneration.Remove((page, epoch));
        if (lastAcknowledged >= 0)
        {
            return loadedVersion < lastAcknowledged;
        }
        if (periodStart >= 0)
        {
            return loadedVersion < periodStart;
        }
        return flusher != Incarnation || owed || short_;
    }

    /// <summary>
    /// Activations of <paramref name="page"/> other than <paramref name="current"/> that left owed writes (and no
    /// intent to ask about): lost with them, unless the acknowledgement table they recorded into says otherwise.
    /// <paramref name="ackTable"/> and <paramref name="tableEntry"/>: the table the current activation records into
    /// and what it held for the page when that activation loaded (before it recorded anything; -1: no table). When
    /// an owed activation registered with that same table: an entry of an earlier activation (or none) means it
    /// acknowledged nothing, so nothing is lost (a registration precedes the acknowledgement it is for, and the silo
    /// may have died between them); an entry of its own says exactly what it acknowledged last, lost if more than
    /// <paramref name="loadedVersion"/>; an entry of a later activation hides it (lost, conservatively). Forgets them
    /// all; true if any was lost.
    /// </summary>
    public bool DropOwedOfOtherActivations(int page, long current, long loadedVersion = 0, long ackTable = 0, long tableEntry = -1)
    {
        var keys = _owed.Where(kv => kv.Key.Page == page && kv.Key.Epoch != current).ToList();
        bool lost = false;
        foreach (var (key, owed) in keys)
        {
            _owed.Remove(key);
            if (ackTable == 0 || owed.AckTable != ackTable || tableEntry < 0)
            {
                lost = true; // nobody can say
                continue;
            }
            long last = AckTable.LastAcknowledged(tableEntry, key.Epoch);
            lost |= last < 0 || loadedVersion < last;
        }
        return lost;
    }
}

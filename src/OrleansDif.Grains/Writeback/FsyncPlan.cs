namespace OrleansDif.Grains;

/// <summary>
/// The bookkeeping of one fsync: for each page it covers, the version it must find durable (of which page
/// activation), or the cause it ends on instead: lost with a silo, poisoned in memory, or judged (an earlier
/// activation's intent answered). The flusher runs rounds of writeback, disk flushes and checks, and tells the plan
/// what each round found; the plan gives the typed result. Plain: no Orleans types.
/// </summary>
public sealed class FsyncPlan(int pages)
{
    private readonly Dictionary<int, (long Version, long Activation)> _want = [];
    private readonly SortedSet<int> _lost = [];
    private readonly SortedSet<int> _poisoned = [];
    private readonly List<int> _judged = [];

    /// <summary>The pages the fsync still waits for.</summary>
    public IReadOnlyCollection<int> Waiting => _want.Keys;

    public bool Done => _want.Count == 0;

    /// <summary>Pages whose loss (or its absence) this fsync tells their page, so that it is reported once.</summary>
    public IEnumerable<int> ToAcknowledge => _lost.Union(_judged);

    public int LostCount => _lost.Count;

    /// <summary>The page must reach <paramref name="version"/> of page activation <paramref name="activation"/> on the medium.</summary>
    public void Want(int page, long version, long activation) => _want[page] = (version, activation);

    public long VersionOf(int page) => _want[page].Version;
    public long ActivationOf(int page) => _want[page].Activation;

    /// <summary>An earlier activation's intent was judged for this page (lost or not).</summary>
    public void Judged(int page) => _judged.Add(page);

    /// <summary>Acknowledged writes of the page are gone (with a silo, or a disk's cache): EIO.</summary>
    public void Lost(int page)
    {
        _want.Remove(page);
        _lost.Add(page);
    }

    /// <summary>The page is poisoned by memory corruption: never written back, EIO.</summary>
    public void Poisoned(int page)
    {
        _want.Remove(page);
        _poisoned.Add(page);
    }

    /// <summary>The wanted version is on the medium: the page is settled.</summary>
    public void Durable(int page) => _want.Remove(page);

    /// <summary>The pages found lost by this fsync.</summary>
    public int[] LostPages => [.. _lost];

    /// <summary>
    /// What the fsync answers: durable, or every page by cause: lost (the pages of <paramref name="errors"/>, the
    /// writeback errors the caller has not been told of), poisoned, still pending.
    /// </summary>
    public FsyncResult Result(int rounds, WritebackError[] errors, ErrorMark mark)
    {
        int[] pending = [.. _want.Keys.Order()];
        int[] lost = [.. errors.SelectMany(e => e.Pages).Distinct().Order()];
        if (_poisoned.Count > 0 || errors.Length > 0)
        {
            var parts = new List<string>();
            if (errors.Length > 0)
            {
                parts.Add(lost.Length > 0
                    ? $"{lost.Length} pages lost acknowledged writes that were not yet durable when their silo died (pages {string.Join(", ", lost.Take(10))})"
                    : string.Join("; ", errors.Select(e => e.Cause)));
            }
            if (_poisoned.Count > 0)
            {
                parts.Add($"{_poisoned.Count} pages poisoned by memory corruption, never written back (pages {string.Join(", ", _poisoned.Take(10))})");
            }
            return new FsyncResult(false, pages, string.Join("; ", parts), lost, [.. _poisoned], pending, errors, mark);
        }
        return pending.Length == 0
            ? new FsyncResult(true, pages, null, Errors: [], Mark: mark)
            : new FsyncResult(false, pages, $"{pending.Length} pages not durable after {rounds} writeback rounds (first: page {pending[0]})", [], [], pending, [], mark);
    }
}

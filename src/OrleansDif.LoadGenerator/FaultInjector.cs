using System.Collections.Concurrent;
using System.Text.Json.Serialization;

namespace OrleansDif.LoadGenerator;

/// <summary>What happened to the faults of one kind in a run.</summary>
public sealed record FaultStats(
    [property: JsonPropertyName("injected")] int Injected,
    [property: JsonPropertyName("detected")] int Detected,
    [property: JsonPropertyName("silent")] int Silent,
    [property: JsonPropertyName("masked")] int Masked,
    [property: JsonPropertyName("pending")] int Pending,
    [property: JsonPropertyName("silentPages")] IReadOnlyList<int>? SilentPages = null,
    [property: JsonPropertyName("repaired")] int Repaired = 0);

/// <summary>
/// Injects faults while a load runs and attributes what the checks reported to them afterwards. Every
/// <see cref="LoadOptions.InjectEvery"/> acknowledged writes, the next kind of the list hits the page just written
/// (media bit rot hits a cold page, written once before the run, as rot hits data at rest). A page is targeted by
/// one fault only, so that a report on a page names its fault, and the writers leave it alone afterwards, so that
/// the fault is not simply overwritten; at most half the writers' pages are targeted. An applied fault is <c>detected</c> when any check
/// reported one of the pages it touched (a disk rejection, a poisoned page, an integrity error on a read or at
/// verification), <c>silent</c> when the byte-exact read-back found one of them wrong with no check reporting it,
/// <c>masked</c> otherwise (overwritten before it mattered); <c>pending</c> faults were never applied (their page
/// was not written back again). On a mirrored volume a disk fault hits one copy (disk d's copy d mod mirrors), and a fault is
/// also <c>repaired</c> (and detected) when its mirror set rewrote a page it touched on that copy from a good one.
/// </summary>
public sealed class FaultInjector(IClusterClient client, VolumeConfig volume, IReadOnlyList<FaultKind> kinds, int every, int[] coldPages, int maxTargets)
{
    private readonly ConcurrentDictionary<int, FaultKind> _targeted = new();
    private readonly ConcurrentDictionary<int, byte> _detected = new();
    private readonly ConcurrentQueue<(FaultKind Kind, int Page, int Copy)> _immediate = new();   // applied as they were asked for
    private readonly ConcurrentDictionary<FaultKind, int> _requested = new();
    private long _acks;
    private int _nextCold;
    private int[] _repairsBefore = [];

    /// <summary>
    /// Notes how many repairs each mirrored disk's history holds before the run: only the run's own repairs are
    /// attributed to its faults.
    /// </summary>
    public async Task BeginAsync()
    {
        if (volume.Mirrors > 1)
        {
            _repairsBefore = await Task.WhenAll(Enumerable.Range(0, volume.Disks).Select(async d => (await client.Disk(volume.Id, d).GetRepairLog()).Length));
        }
    }

    public IReadOnlyList<FaultKind> Kinds => kinds;

    /// <summary>
    /// A targeted page is left alone by the writers from then on, so that its fault stays until it is applied and
    /// read back instead of being overwritten (masked) by the next write.
    /// </summary>
    public bool IsRetired(int page) => _targeted.ContainsKey(page);

    /// <summary>Called after each acknowledged write of <paramref name="page"/>; injects when one is due.</summary>
    public async Task AfterWriteAsync(int page, Random rng)
    {
        long n = Interlocked.Increment(ref _acks);
        if (n % every != 0 || _targeted.Count >= maxTargets)
        {
            return; // not due, or enough pages retired: the writers keep half of theirs
        }
        FaultKind kind = kinds[(int)(n / every % kinds.Count)];
        if (kind == FaultKind.MediaBitrot && coldPages.Length > 0)
        {
            int i = Interlocked.Increment(ref _nextCold) - 1;
            if (i >= coldPages.Length)
            {
                return; // every cold page has rotted once
            }
            page = coldPages[i];
        }
        if (!_targeted.TryAdd(page, kind))
        {
            return; // one fault per page: a report on a page names its fault
        }
        var (disk, lba) = volume.Locate(page);
        // On a mirrored volume every fault of disk d hits its copy d mod mirrors: the primary of some disks, another copy
        // of others, and always one copy of each sector good. Two faults on two copies of one sector are independent
        // and rare on real disks; here faults come every few writes, and a misdirected command damages pages it was not
        // meant for, so faults spread over the copies would meet on one sector and leave nothing to repair it from.
        int copy = disk % volume.Mirrors;
        switch (kind)
        {
            case FaultKind.PageBitflip:
                await client.Page(volume.Id, page).InjectBitflip(rng.Next(VolumeConfig.PageSize * 8));
                _immediate.Enqueue((kind, page, 0));
                break;
            case FaultKind.TransitBitflip:
                await client.Flusher(volume.Id).InjectTransitBitflip(page);
                break;
            case FaultKind.MediaBitrot:
                long sector = lba + rng.Next(volume.SectorsPerPage);
                for (int attempt = 1; ; attempt++)
                {
                    try
                    {
                        await client.DiskCopy(volume.Id, disk, copy).InjectFault(kind, sector, 1);
                        break;
                    }
                    catch (Exception e) when (attempt < 5 && (e is TimeoutException || e is OrleansException))
                    {
                        // A silo died under the call (chaos): rot again until one call is answered; a sector rotted
                        // twice is still one fault of its page.
                    }
                }
                _immediate.Enqueue((kind, page, copy));
                break;
            default:
                await client.DiskCopy(volume.Id, disk, copy).InjectFault(kind, lba, 1);
                break;
        }
        _requested.AddOrUpdate(kind, 1, (_, c) => c + 1);
    }

    /// <summary>A check reported page <paramref name="page"/> (an integrity error seen by a writer or at verification).</summary>
    public void Detected(int page) => _detected.TryAdd(page, 0);

    /// <summary>
    /// Collects what the grains applied and reported, and attributes: per kind, the counts; and the pages the
    /// faults touched (their read-back differences and integrity errors belong to the faults, not to the run).
    /// </summary>
    public async Task<(Dictionary<string, FaultStats> Stats, HashSet<int> Affected)> SummarizeAsync(
        IReadOnlySet<int> mismatched)
    {
        WritebackEvents events = await client.Flusher(volume.Id).GetEvents();
        foreach (int p in events.RejectedPages.Concat(events.PoisonedPages))
        {
            Detected(p);
        }
        // Where each fault's damage went (a page on a copy), for the repairs; -1: not on a disk.
        var applied = new List<(FaultKind Kind, List<int> Pages, int Copy)>();
        foreach (var (kind, page, copy) in _immediate)
        {
            applied.Add((kind, [page], kind == FaultKind.MediaBitrot ? copy : -1));
        }
        foreach (FaultRecord r in events.Applied)
        {
            applied.Add((r.Kind, [r.Page], -1));
        }
        var repaired = new HashSet<(int Page, int Copy)>();
        for (int d = 0; d < volume.Disks; d++)
        {
            for (int c = 0; c < volume.Mirrors; c++)
            {
                foreach (FaultRecord r in await client.DiskCopy(volume.Id, d, c).GetFaultLog())
                {
                    if (r.Kind == FaultKind.MediaBitrot)
                    {
                        continue; // counted when asked for (it is applied at once)
                    }
                    var pages = PagesOf(d, r.Lba, r.Sectors);
                    if (r.Kind == FaultKind.MisdirectedWrite)
                    {
                        pages.AddRange(PagesOf(d, r.TargetLba, r.Sectors)); // the data it overwrote
                    }
                    applied.Add((r.Kind, pages.Distinct().ToList(), c));
                }
            }
            if (volume.Mirrors > 1)
            {
                foreach (RepairRecord r in (await client.Disk(volume.Id, d).GetRepairLog()).Skip(d < _repairsBefore.Length ? _repairsBefore[d] : 0))
                {
                    foreach (int p in PagesOf(d, r.Lba, 1))
                    {
                        repaired.Add((p, r.Copy));
                    }
                }
            }
        }
        var stats = new Dictionary<string, FaultStats>();
        var affected = new HashSet<int>();
        foreach (FaultKind kind in kinds.Distinct())
        {
            int injected = 0, detected = 0, silent = 0, masked = 0, mended = 0;
            var silentPages = new SortedSet<int>();
            foreach (var (k, all, copy) in applied.Where(a => a.Kind == kind))
            {
                // A command fault touches every page of its command; a page another kind targeted is that kind's.
                List<int> pages = all.Where(p => !_targeted.TryGetValue(p, out FaultKind owner) || owner == kind).ToList();
                if (pages.Count == 0)
                {
                    pages = all;
                }
                affected.UnionWith(all); // whatever a fault touched is the faults' to explain, not the run's
                injected++;
                bool found = pages.Any(_detected.ContainsKey);
                if (!found && pages.Any(mismatched.Contains))
                {
                    // Wrong at read-back with no check reporting it: silent, whatever a mirror rewrote.
                    silent++;
                    silentPages.UnionWith(pages.Where(mismatched.Contains));
                }
                else if (copy >= 0 && all.Any(p => repaired.Contains((p, copy))))
                {
                    mended++;
                    detected++;
                }
                else if (found)
                {
                    detected++;
                }
                else
                {
                    masked++;
                }
            }
            int requested = _requested.GetValueOrDefault(kind);
            stats[FaultKinds.Name(kind)] = new FaultStats(injected, detected, silent, masked, Math.Max(0, requested - injected), [.. silentPages.Take(50)], mended);
        }
        return (stats, affected);
    }

    private List<int> PagesOf(int disk, long lba, int sectors)
    {
        var pages = new List<int>();
        for (long s = lba - lba % volume.SectorsPerPage; s < lba + sectors; s += volume.SectorsPerPage)
        {
            int p = volume.PageAt(disk, s);
            if (p >= 0)
            {
                pages.Add(p);
            }
        }
        return pages;
    }
}

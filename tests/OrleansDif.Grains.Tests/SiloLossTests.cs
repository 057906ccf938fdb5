using Orleans.TestingHost;
using OrleansDif.Grains;

namespace OrleansDif.Grains.Tests;

[CollectionDefinition(Name)]
public sealed class SiloLossCollection : ICollectionFixture<ClusterFixture>
{
    public const string Name = "silo-loss";
}

/// <summary>Kills silos of a cluster of its own (the shared one keeps its three silos).</summary>
[Collection(SiloLossCollection.Name)]
public class SiloLossTests(ClusterFixture fixture)
{
    private readonly IGrainFactory _grains = fixture.Grains;

    [Fact]
    public async Task FlusherSiloDiesMidWritebackLeaseExpiresAndThePageIsWrittenAgain()
    {
        TestCluster cluster = fixture.Cluster;
        // A volume whose flusher is on a secondary silo (the primary holds the membership table), and a page on
        // another silo. The victim may hold a disk too: it comes back elsewhere with its image.
        string primary = cluster.Primary!.SiloAddress.ToString();
        VolumeConfig? v = null;
        SiloHandle? victim = null;
        for (int attempt = 0; attempt < 30 && victim is null; attempt++)
        {
            VolumeConfig candidate = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable, c => c with { LeaseMs = 300 });
            await _grains.Flusher(candidate).GetStats(); // activates it
            string flusherSilo = await FlusherSilo(candidate);
            if (flusherSilo != primary)
            {
                v = candidate;
                victim = cluster.GetActiveSilos().FirstOrDefault(s => s.SiloAddress.ToString() == flusherSilo);
            }
        }
        Assert.NotNull(victim);
        string victimAddress = victim.SiloAddress.ToString();
        int page = -1;
        for (int p = 0; p < v!.Pages && page < 0; p++)
        {
            if ((await _grains.Page(v, p).GetInfo()).Silo != victimAddress)
            {
                page = p;
            }
        }
        Assert.True(page >= 0);
        byte[] data = TestVolumes.Pattern(4242);
        await _grains.Page(v, page).Write(0, data, false);

        StepHooks.Gate begun = StepHooks.Arm(v.Id, StepHooks.WritebackBegun);
        StepHooks.Gate expired = StepHooks.Arm(v.Id, StepHooks.LeaseExpired, autoRelease: true);
        Task<FsyncResult> fsync = _grains.Flusher(v).Fsync(0, v.Pages);
        await begun.Reached.Within();
        Assert.Equal(PageState.Writeback, (await _grains.Page(v, page).GetInfo()).State);

        await cluster.KillSiloAsync(victim);
        await victim.DisposeAsync();             // its process is gone: its open files close
        await cluster.WaitForLivenessToStabilizeAsync();
        await Assert.ThrowsAnyAsync<Exception>(() => fsync.Within(60)); // the flusher died with its silo

        await expired.Reached.Within(60);        // the page did not stay stuck
        PageInfo info = await _grains.Page(v, page).GetInfo();
        Assert.Equal(PageState.Dirty, info.State);
        // A new flusher activation learnt of the page from it, and writes it again.
        FsyncResult again = await _grains.Flusher(v).Fsync(0, v.Pages);
        Assert.True(again.Durable, again.Error);
        Assert.Equal(1, again.Pages);
        Assert.Equal(data, await _grains.OnDisk(v, page));
        Assert.Equal(PageState.Clean, (await _grains.Page(v, page).GetInfo()).State);
        await RestoreSilos(cluster);
    }

    [Fact]
    public async Task FlusherSiloDiesWhilePagesAreDirtyAndTheNextFsyncStillWritesThem()
    {
        TestCluster cluster = fixture.Cluster;
        string primary = cluster.Primary!.SiloAddress.ToString();
        VolumeConfig? v = null;
        SiloHandle? victim = null;
        for (int attempt = 0; attempt < 30 && victim is null; attempt++)
        {
            VolumeConfig candidate = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
            await _grains.Flusher(candidate).GetStats();
            string flusherSilo = await FlusherSilo(candidate);
            if (flusherSilo != primary)
            {
                v = candidate;
                victim = cluster.GetActiveSilos().FirstOrDefault(s => s.SiloAddress.ToString() == flusherSilo);
            }
        }
        Assert.NotNull(victim);
        string victimAddress = victim.SiloAddress.ToString();
        // Dirty pages that live on surviving silos (the dirty age is long: nothing is written back by itself).
        var written = new Dictionary<int, byte[]>();
        for (int p = 0; p < v!.Pages && written.Count < 4; p++)
        {
            if ((await _grains.Page(v, p).GetInfo()).Silo != victimAddress)
            {
                written[p] = TestVolumes.Pattern(5000 + p);
                await _grains.Page(v, p).Write(0, written[p], false);
            }
        }
        Assert.Equal(4, written.Count);

        await cluster.KillSiloAsync(victim);
        await victim.DisposeAsync();
        await cluster.WaitForLivenessToStabilizeAsync();

        // The flusher that answers now is a new activation that was never told of these pages: it must not call
        // them durable unseen. It finds them among the active pages and writes them.
        FsyncResult f = await _grains.Flusher(v).Fsync(0, v.Pages);
        Assert.True(f.Durable, f.Error);
        Assert.Equal(written.Count, f.Pages);
        foreach (var (p, data) in written)
        {
            Assert.Equal(data, await _grains.OnDisk(v, p));
            Assert.Equal(PageState.Clean, (await _grains.Page(v, p).GetInfo()).State);
        }
        await RestoreSilos(cluster);
    }

    [Fact]
    public async Task DiskSiloDiesAndTheDiskComesBackWithItsDataAndOneWriter()
    {
        TestCluster cluster = fixture.Cluster;
        string primary = cluster.Primary!.SiloAddress.ToString();
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
        // Disk 0 and 1 sit on the first two silos in address order; pick the one that is not the primary.
        int disk = -1;
        string diskSilo = "";
        for (int d = 0; d < v.Disks && disk < 0; d++)
        {
            diskSilo = (await _grains.Disk(v, d).GetStats()).Silo;
            if (diskSilo != primary)
            {
                disk = d;
            }
        }
        Assert.True(disk >= 0);
        int page = Enumerable.Range(0, v.Pages).First(p => v.Locate(p).Disk == disk);
        byte[] data = TestVolumes.Pattern(777);
        await _grains.Page(v, page).Write(0, data, false);
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable);
        string image = (await _grains.Disk(v, disk).GetStats()).ImagePath;
        // One writer per image: nobody else may open it for writing while the disk grain has it.
        Assert.ThrowsAny<IOException>(() => OrleansDif.Protection.DiskImage.Open(image, writable: true));

        SiloHandle victim = cluster.GetActiveSilos().First(s => s.SiloAddress.ToString() == diskSilo);
        await cluster.KillSiloAsync(victim);
        await victim.DisposeAsync();             // its process is gone: its open files close
        await cluster.WaitForLivenessToStabilizeAsync();

        DiskStats after = await _grains.Disk(v, disk).GetStats(); // a new activation, on a surviving silo
        Assert.NotEqual(diskSilo, after.Silo);
        Assert.Equal(image, after.ImagePath);
        var (_, lba) = v.Locate(page);
        Assert.Equal(data, (await _grains.Disk(v, disk).Read(lba, v.SectorsPerPage)).Data);
        Assert.Equal(data, await _grains.Page(v, page).Read(0, 4096));
        Assert.ThrowsAny<IOException>(() => OrleansDif.Protection.DiskImage.Open(image, writable: true));
        await RestoreSilos(cluster);
    }

    [Fact]
    public async Task PageSiloDiesHoldingAcknowledgedWritesAndTheNextFsyncReportsThemLostOnce()
    {
        TestCluster cluster = fixture.Cluster;
        string primary = cluster.Primary!.SiloAddress.ToString();
        // One dirty page on a secondary silo (the victim), one on another silo; both acknowledged, neither written
        // back (long dirty age). The victim is where a page went: a silo that just joined may hold none, and
        // placement is random: volumes are tried until one has pages on two silos, one of them not the primary.
        VolumeConfig v = null!;
        int doomed = -1, survivor = -1;
        string victimAddress = "";
        for (int attempt = 0; attempt < 30 && survivor < 0; attempt++)
        {
            v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
            var silos = new string[v.Pages];
            for (int p = 0; p < v.Pages; p++)
            {
                silos[p] = (await _grains.Page(v, p).GetInfo()).Silo;
            }
            doomed = Array.FindIndex(silos, s => s != primary);
            if (doomed >= 0)
            {
                victimAddress = silos[doomed];
                survivor = Array.FindIndex(silos, s => s != victimAddress);
            }
        }
        Assert.True(survivor >= 0);
        SiloHandle victim = cluster.GetActiveSilos().First(s => s.SiloAddress.ToString() == victimAddress);
        byte[] lostData = TestVolumes.Pattern(6001), keptData = TestVolumes.Pattern(6002);
        WriteResult w = await _grains.Page(v, doomed).Write(0, lostData, false);
        Assert.Equal(WriteStatus.Ok, w.Status);
        await _grains.Page(v, survivor).Write(0, keptData, false);
        // Two handles of the volume open before the loss (errseq): each must be told of it, once.
        ErrorMark handleA = await _grains.Flusher(v).SampleErrors();
        ErrorMark handleB = await _grains.Flusher(v).SampleErrors();

        await cluster.KillSiloAsync(victim);     // SIGKILL-like: no deactivation, the dirty page's memory is gone
        await victim.DisposeAsync();
        await cluster.WaitForLivenessToStabilizeAsync();

        // An in-process silo stopped ungracefully may still get its page onto the disk on the way out; a real
        // SIGKILL (the chaos test) never does. Either way: fsync is durable only if nothing was lost, and a page
        // that came back without its acknowledged write fails the fsync (EIO) and is named.
        FsyncResult f = await _grains.Flusher(v).Fsync(0, v.Pages, handleA);
        PageInfo info = await _grains.Page(v, doomed).GetInfo();
        Assert.NotEqual(w.Activation, info.Activation);
        Assert.True(info.LoadedVersion == w.Version || info.LoadedVersion < PageVersion.First(w.Activation), $"{info.LoadedVersion} vs {w.Version}");
        bool cameBackShort = info.LoadedVersion < w.Version;
        if (cameBackShort || !f.Durable)
        {
            Assert.False(f.Durable);
            Assert.Contains("lost acknowledged writes", f.Error);
            Assert.Contains($"pages {doomed}", f.Error);
            Assert.Contains(doomed, f.LostPages!);   // typed: callers switch on the pages by cause
            Assert.True(f.ReportsLoss);
            Assert.False(info.LostWrites, $"{f} {info}"); // reported: the next fsync does not report it again
        }
        byte[] kept = cameBackShort ? new byte[4096] : lostData;
        Assert.Equal(kept, await _grains.OnDisk(v, doomed));
        Assert.Equal(kept, await _grains.Page(v, doomed).Read(0, 4096)); // its disk copy: never a write it lost
        // The survivor's write was not lost with the other silo: the same fsync wrote it.
        Assert.Equal(keptData, await _grains.OnDisk(v, survivor));

        // The other handle open at the loss is told of it too, once; a handle opened after it, and handle A again
        // (with the mark its fsync returned), are not.
        ErrorMark opensLater = await _grains.Flusher(v).SampleErrors();
        FsyncResult b = await _grains.Flusher(v).Fsync(0, v.Pages, handleB);
        Assert.Equal(f.Durable, b.Durable);
        Assert.Equal(f.LostPages ?? [], b.LostPages ?? []);
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages, b.Mark)).Durable);
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages, f.Mark)).Durable);
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages, opensLater)).Durable);
        FsyncResult again = await _grains.Flusher(v).Fsync(0, v.Pages);
        Assert.True(again.Durable, again.Error);
        // Judged either way now: lost and reported once, or (the write reached its disk on the way out) not lost,
        // and never reported although its data is there.
        Assert.False((await _grains.Page(v, doomed).GetInfo()).LostWrites);
        await _grains.Page(v, doomed).Write(0, lostData, false);
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable);
        Assert.Equal(lostData, await _grains.OnDisk(v, doomed));
        await RestoreSilos(cluster);
    }

    [Fact]
    public async Task DiskSiloDiesInTheMiddleOfAMultiPageCommandAndNoPageIsEverHalfOfEach()
    {
        TestCluster cluster = fixture.Cluster;
        string primary = cluster.Primary!.SiloAddress.ToString();
        // A volume whose disk d sits on a secondary silo, and a stripe unit of d whose four pages live elsewhere
        // (their dirty content survives the kill): one disk command of 4 pages = 32 sectors.
        VolumeConfig? v = null;
        SiloHandle? victim = null;
        int[] run = [];
        string diag = "";
        for (int attempt = 0; attempt < 30 && run.Length == 0; attempt++)
        {
            VolumeConfig candidate = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable, c => c with { StripePages = 4, Disks = 3 });
            diag = "";
            for (int d = 0; d < candidate.Disks && run.Length == 0; d++)
            {
                string diskSilo = (await _grains.Disk(candidate, d).GetStats()).Silo;
                diag += $" disk{d}@{diskSilo}";
                if (diskSilo == primary)
                {
                    continue;
                }
                for (int unit = 0; unit < candidate.Pages / 4 && run.Length == 0; unit++)
                {
                    int[] pages = Enumerable.Range(unit * 4, 4).ToArray();
                    if (candidate.Locate(pages[0]).Disk != d)
                    {
                        continue;
                    }
                    bool elsewhere = true;
                    foreach (int p in pages)
                    {
                        elsewhere &= (await _grains.Page(candidate, p).GetInfo()).Silo != diskSilo;
                    }
                    if (elsewhere)
                    {
                        (v, victim, run) = (candidate, cluster.GetActiveSilos().First(s => s.SiloAddress.ToString() == diskSilo), pages);
                    }
                }
            }
        }
        Assert.True(victim is not null, $"no disk on a secondary silo with a stripe unit elsewhere; primary {primary}, silos {string.Join(", ", cluster.GetActiveSilos().Select(x => x.SiloAddress))}; {diag}");
        int disk = v!.Locate(run[0]).Disk;
        long lba = v.Locate(run[0]).Lba;
        Assert.All(run, p => Assert.Equal(lba + (p - run[0]) * v.SectorsPerPage, v.Locate(p).Lba)); // contiguous on d

        // A, acknowledged and synced; then B, acknowledged, and its writeback stopped at the disk mid-command.
        byte[][] a = [.. run.Select(p => TestVolumes.Pattern(7000 + p))];
        byte[][] b = [.. run.Select(p => TestVolumes.Pattern(8000 + p))];
        for (int i = 0; i < run.Length; i++)
        {
            await _grains.Page(v, run[i]).Write(0, a[i], false);
        }
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable);
        for (int i = 0; i < run.Length; i++)
        {
            await _grains.Page(v, run[i]).Write(0, b[i], false);
        }
        StepHooks.Gate atDisk = StepHooks.Arm(v.Id, StepHooks.DiskCommand);
        Task<FsyncResult> fsync = _grains.Flusher(v).Fsync(0, v.Pages);
        await atDisk.Reached.Within();           // (the disk grain is busy with it: no other call to it now)

        await cluster.KillSiloAsync(victim);     // the disk's silo dies holding the 32-sector command
        await victim.DisposeAsync();             // its open image closes with it
        await cluster.WaitForLivenessToStabilizeAsync();
        atDisk.Release();                        // what is left of the old activation goes on into a closed image

        // The fsync under way may fail, or may finish by writing the pages again to the disk's new activation;
        // if it says durable, B is on the disk whole. Either way a second fsync makes B durable.
        FsyncResult? during = null;
        try
        {
            during = await fsync.Within(60);
        }
        catch (Exception e) when (e is not Xunit.Sdk.XunitException)
        {
            // not acknowledged: nothing was promised
        }
        if (during is { Durable: true })
        {
            for (int i = 0; i < run.Length; i++)
            {
                Assert.Equal(b[i], await _grains.OnDisk(v, run[i]));
            }
        }
        // Meanwhile and after, the disk holds each page whole: all of A (synced) or all of B, never part of each,
        // and the PI of all 32 sectors verifies.
        for (int i = 0; i < run.Length; i++)
        {
            byte[] onDisk = await _grains.OnDisk(v, run[i]);
            Assert.True(onDisk.AsSpan().SequenceEqual(a[i]) || onDisk.AsSpan().SequenceEqual(b[i]), $"page {run[i]} is neither A nor B");
        }
        FsyncResult after = await _grains.Flusher(v).Fsync(0, v.Pages);
        Assert.True(after.Durable, after.Error);
        DiskReadResult whole = await _grains.Disk(v, disk).Read(lba, run.Length * v.SectorsPerPage);
        Assert.Equal(b.SelectMany(x => x).ToArray(), whole.Data);
        for (int i = 0; i < run.Length; i++)
        {
            Assert.Equal(b[i], await _grains.Page(v, run[i]).Read(0, 4096));
            PageInfo pi = await _grains.Page(v, run[i]).GetInfo();
            Assert.True(pi.State == PageState.Clean, $"page {run[i]}: {pi}; the fsync after: {after}; flusher: {await _grains.Flusher(v).GetStats()}");
        }
        await RestoreSilos(cluster);
    }

    [Fact]
    public async Task PageSiloKilledBetweenTheDiskWriteAndTheEndOfWritebackReportsNoLoss()
    {
        TestCluster cluster = fixture.Cluster;
        string primary = cluster.Primary!.SiloAddress.ToString();
        // The page on a secondary silo; its flusher and its disk elsewhere (they survive and know what landed).
        var (v, (page, victimAddress)) = await FirstVolumeWhere(async candidate =>
        {
            string flusherSilo = await FlusherSilo(candidate);
            for (int p = 0; p < candidate.Pages; p++)
            {
                string pageSilo = (await _grains.Page(candidate, p).GetInfo()).Silo;
                string diskSilo = (await _grains.Disk(candidate, candidate.Locate(p).Disk).GetStats()).Silo;
                if (pageSilo != primary && pageSilo != flusherSilo && pageSilo != diskSilo)
                {
                    return (p, pageSilo);
                }
            }
            return ((int, string)?)null;
        });
        SiloHandle victim = cluster.GetActiveSilos().First(s => s.SiloAddress.ToString() == victimAddress);
        byte[] data = TestVolumes.Pattern(9100);
        WriteResult w = await _grains.Page(v, page).Write(0, data, false);

        StepHooks.Gate landed = StepHooks.Arm(v.Id, StepHooks.CommandLanded);
        Task<FsyncResult> fsync = _grains.Flusher(v).Fsync(0, v.Pages);
        await landed.Reached.Within();           // on the disk (its cache); the page not yet told
        await cluster.KillSiloAsync(victim);
        await victim.DisposeAsync();
        await cluster.WaitForLivenessToStabilizeAsync();
        landed.Release();                         // the end of writeback goes to a page that is gone

        FsyncResult? during = null;
        try
        {
            during = await fsync.Within(60);
        }
        catch (Exception e) when (e is not Xunit.Sdk.XunitException)
        {
            // the end call failed with the silo: the fsync under way may fail; nothing was promised
        }
        if (during is not null)
        {
            Assert.True(during.Durable, during.Error); // no loss reported: the write had reached the disk
        }
        FsyncResult after = await _grains.Flusher(v).Fsync(0, v.Pages);
        Assert.True(after.Durable, after.Error);
        Assert.Equal(data, await _grains.OnDisk(v, page));
        PageInfo info = await _grains.Page(v, page).GetInfo();
        Assert.NotEqual(w.Activation, info.Activation);
        Assert.Equal(w.Version, info.LoadedVersion);  // the new activation found the write on its disk
        Assert.False(info.LostWrites);
        Assert.Equal(data, await _grains.Page(v, page).Read(0, 4096));
        await RestoreSilos(cluster);
    }

    [Fact]
    public async Task DiskSiloKilledWithFlushedAndUnflushedWritesKeepsEveryFlushedOne()
    {
        TestCluster cluster = fixture.Cluster;
        string primary = cluster.Primary!.SiloAddress.ToString();
        // A disk on a secondary silo; pages of that disk living elsewhere (their memory survives) and a flusher
        // elsewhere too.
        var (v, (disk, pages, victimAddress)) = await FirstVolumeWhere(async candidate =>
        {
            string flusherSilo = await FlusherSilo(candidate);
            for (int d = 0; d < candidate.Disks; d++)
            {
                string diskSilo = (await _grains.Disk(candidate, d).GetStats()).Silo;
                if (diskSilo == primary || diskSilo == flusherSilo)
                {
                    continue;
                }
                List<int> found = await PagesOfDiskNotOn(candidate, d, diskSilo, 4);
                if (found.Count == 4)
                {
                    return (d, found, diskSilo);
                }
            }
            return ((int, List<int>, string)?)null;
        });
        SiloHandle victim = cluster.GetActiveSilos().First(s => s.SiloAddress.ToString() == victimAddress);
        // Two pages written and synced (flushed); two written back into the disk's cache only (not flushed).
        byte[][] content = [.. pages.Select(p => TestVolumes.Pattern(9200 + p))];
        for (int i = 0; i < 2; i++)
        {
            await _grains.Page(v!, pages[i]).Write(0, content[i], false);
        }
        Assert.True((await _grains.Flusher(v!).Fsync(0, v!.Pages)).Durable);
        for (int i = 2; i < 4; i++)
        {
            await _grains.Page(v, pages[i]).Write(0, content[i], false);
        }
        Assert.Equal(2, await _grains.Flusher(v).StartWriteback(0, v.Pages));
        Assert.Equal(content[2], await _grains.OnDisk(v, pages[2])); // in the cache of the disk
        long redirtiedBefore = (await _grains.Flusher(v).GetStats()).Redirtied;

        await cluster.KillSiloAsync(victim);      // the disk's cache dies with it
        await victim.DisposeAsync();
        await cluster.WaitForLivenessToStabilizeAsync();

        // Flushed ones are all there, with valid PI, on the disk's new activation.
        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(content[i], await _grains.OnDisk(v, pages[i]));
        }
        // The next fsync finds the disk came back without its cache: the pages (which still hold the content)
        // are written again, and then everything acknowledged is durable.
        FsyncResult f = await _grains.Flusher(v).Fsync(0, v.Pages);
        Assert.True(f.Durable, f.Error);
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal(content[i], await _grains.OnDisk(v, pages[i]));
        }
        // The two unflushed pages were written again, unless the in-process silo's stop got the cache out on its way
        // down (a real SIGKILL never does: the chaos test covers that): never one of them only.
        long redirtied = (await _grains.Flusher(v).GetStats()).Redirtied - redirtiedBefore;
        Assert.True(redirtied is 0 or 2, $"{redirtied} pages written again");
        string image = (await _grains.Disk(v, disk).GetStats()).ImagePath;
        Assert.True((await _grains.Disk(v, disk).Flush()) != 0);
        Assert.True(OrleansDif.Protection.Scrubber.Scrub(image).Clean);
        await RestoreSilos(cluster);
    }

    [Fact]
    public async Task AMirrorCopySiloDiesHoldingUnflushedWritesAndTheCopyIsResyncedWhileWritesGoOn()
    {
        TestCluster cluster = fixture.Cluster;
        string primary = cluster.Primary!.SiloAddress.ToString();
        // A mirrored disk whose copy is on a secondary silo that holds neither the flusher nor the disk itself, and
        // two pages of that disk elsewhere.
        var (v, (disk, pages, victimAddress)) = await FirstVolumeWhere(async candidate =>
        {
            string flusherSilo = await FlusherSilo(candidate);
            for (int d = 0; d < candidate.Disks; d++)
            {
                string copySilo = (await GrainKeys.DiskCopy(_grains, candidate.Id, d, 1).GetStats()).Silo;
                if (copySilo == primary || copySilo == flusherSilo || copySilo == (await _grains.Disk(candidate, d).GetStats()).Silo)
                {
                    continue;
                }
                List<int> found = await PagesOfDiskNotOn(candidate, d, copySilo, 2);
                if (found.Count == 2)
                {
                    return (d, found, copySilo);
                }
            }
            return ((int, List<int>, string)?)null;
        }, c => c with { Mirrors = 2, StripePages = 4 });
        IDiskGrain diskGrain = _grains.Disk(v, disk);
        IDiskGrain copy = GrainKeys.DiskCopy(_grains, v.Id, disk, 1);
        byte[][] first = [.. pages.Select(p => TestVolumes.Pattern(9400 + p))];
        byte[][] second = [.. pages.Select(p => TestVolumes.Pattern(9500 + p))];
        for (int i = 0; i < 2; i++)
        {
            await _grains.Page(v, pages[i]).Write(0, first[i], false);
        }
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable);
        for (int i = 0; i < 2; i++)
        {
            await _grains.Page(v, pages[i]).Write(0, second[i], false);
        }
        Assert.Equal(2, await _grains.Flusher(v).StartWriteback(0, v.Pages)); // into the disk's and the copy's caches

        SiloHandle victim = cluster.GetActiveSilos().First(s => s.SiloAddress.ToString() == victimAddress);
        await cluster.KillSiloAsync(victim);      // the copy's cache dies with it
        await victim.DisposeAsync();
        await cluster.WaitForLivenessToStabilizeAsync();

        // Writes and fsyncs go on: the disk takes them, and the copy, answering from a new activation, is behind.
        FsyncResult f = await _grains.Flusher(v).Fsync(0, v.Pages);
        Assert.True(f.Durable, f.Error);
        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(second[i], await _grains.Page(v, pages[i]).ReadDurable());
        }
        // The copy is resynced from the disk (in the background, and by a scrub, which compares every slot now).
        ScrubResult mended = await diskGrain.Scrub();
        Assert.Equal(0, mended.Unrepairable);
        Assert.Equal(0, mended.OutOfSync);
        Assert.Equal(0, (await diskGrain.GetStats()).OutOfSync);
        for (int i = 0; i < 2; i++)
        {
            DiskPageRead held = await copy.LoadPage(v.Locate(pages[i]).Lba, claim: false);
            Assert.Null(held.Failure);
            Assert.Equal(second[i], held.Data);
        }
        ScrubResult scrub = await diskGrain.Scrub();
        Assert.Equal(0, scrub.Repaired + scrub.Resynced + scrub.Unrepairable); // nothing left to mend
        await RestoreSilos(cluster);
    }

    /// <summary>
    /// Creates volumes until one has the placement a test needs (<paramref name="probe"/> finds it, or null):
    /// placement is Orleans', so a test looks for it rather than assuming it.
    /// </summary>
    private async Task<(VolumeConfig Volume, T Found)> FirstVolumeWhere<T>(Func<VolumeConfig, Task<T?>> probe,
        Func<VolumeConfig, VolumeConfig>? tweak = null) where T : struct
    {
        for (int attempt = 0; attempt < 30; attempt++)
        {
            VolumeConfig candidate = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable, tweak);
            await _grains.Flusher(candidate).GetStats(); // activates it, so that its silo can be told
            if (await probe(candidate) is T found)
            {
                return (candidate, found);
            }
        }
        throw new Xunit.Sdk.XunitException("no volume with the placement this test needs in 30 tries");
    }

    /// <summary>Up to <paramref name="count"/> pages of disk <paramref name="disk"/> whose page grains live elsewhere than <paramref name="silo"/>.</summary>
    private async Task<List<int>> PagesOfDiskNotOn(VolumeConfig v, int disk, string silo, int count)
    {
        var found = new List<int>();
        for (int p = 0; p < v.Pages && found.Count < count; p++)
        {
            if (v.Locate(p).Disk == disk && (await _grains.Page(v, p).GetInfo()).Silo != silo)
            {
                found.Add(p);
            }
        }
        return found;
    }

    /// <summary>Brings the cluster back to its three silos for the next test.</summary>
    private static async Task RestoreSilos(TestCluster cluster)
    {
        int missing = ClusterFixture.Silos - cluster.GetActiveSilos().Count();
        if (missing > 0)
        {
            await cluster.StartAdditionalSilosAsync(missing);
            await cluster.WaitForLivenessToStabilizeAsync();
        }
    }

    private async Task<string> FlusherSilo(VolumeConfig v)
    {
        // The flusher reports no silo of its own; ask the management grain where it lives.
        var management = _grains.GetGrain<IManagementGrain>(0);
        var grainId = ((GrainReference)_grains.Flusher(v)).GrainId;
        foreach (SiloAddress silo in (await management.GetHosts(onlyActive: true)).Keys)
        {
            var grains = await management.GetDetailedGrainStatistics(null, [silo]);
            if (grains.Any(g => g.GrainId == grainId))
            {
                return silo.ToString();
            }
        }
        return "";
    }
}

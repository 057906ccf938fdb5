using OrleansDif.Protection;

namespace OrleansDif.Grains.Tests;

/// <summary>Each injected fault, and what the protection information does (or cannot do) about it.</summary>
[Collection(ClusterCollection.Name)]
public class FaultInjectionTests(ClusterFixture fixture)
{
    private readonly IGrainFactory _grains = fixture.Grains;

    private static async Task<StorageException> ReadFails(IDiskGrain disk, long lba, int sectors) =>
        await Assert.ThrowsAsync<StorageException>(() => disk.Read(lba, sectors));

    [Fact]
    public async Task PageBitflipIsCaughtByTagsCachedAtCopyIn()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
        IPageGrain page = _grains.Page(v, 0);
        await page.Write(0, TestVolumes.Pattern(1), false);
        Assert.True((await _grains.Flusher(v).Fsync(0, 1)).Durable);
        byte[] good = TestVolumes.Pattern(2);
        await page.Write(0, good, false);
        await page.InjectBitflip(1234);            // memory corruption after copy-in

        FsyncResult f = await _grains.Flusher(v).Fsync(0, 1);
        Assert.False(f.Durable);                    // never acknowledged as durable
        Assert.Contains("poisoned", f.Error);
        Assert.Equal([0], f.PoisonedPages!);
        Assert.False(f.ReportsLoss);
        WritebackStats stats = await _grains.Flusher(v).GetStats();
        Assert.Equal(1, stats.RejectedGuard);       // detected and counted once: the page is poisoned, not retried
        Assert.Equal(1, stats.PoisonedPages);
        Assert.Equal(new[] { 0 }, (await _grains.Flusher(v).GetEvents()).PoisonedPages);
        Assert.Equal(TestVolumes.Pattern(1), await _grains.OnDisk(v, 0)); // the corrupt page never reached the medium
        PageInfo info = await page.GetInfo();
        Assert.True(info.Poisoned);
        StorageException read = await Assert.ThrowsAsync<StorageException>(() => page.Read(0, 16));
        Assert.Equal(StorageError.IntegrityError, read.Error);   // never returned as good data
        StorageException partial = await Assert.ThrowsAsync<StorageException>(() => page.Write(0, new byte[512], false));
        Assert.Equal(StorageError.IntegrityError, partial.Error);
        Assert.Equal(info.Version, (await page.GetInfo()).Version); // refused: nothing changed
        Assert.False((await _grains.Flusher(v).Fsync(0, 1)).Durable); // still reported, at once

        // The application writes the page again: fresh tags over fresh data, and it goes down.
        await page.Write(0, good, false);
        Assert.True((await _grains.Flusher(v).Fsync(0, 1)).Durable);
        Assert.Equal(good, await _grains.OnDisk(v, 0));
    }

    [Fact]
    public async Task CorruptionOfACleanPageIsReportedByARead()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
        IPageGrain page = _grains.Page(v, 8);
        await page.Write(0, TestVolumes.Pattern(30), false);
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable);
        await page.InjectBitflip(512 * 8 * 2 + 5);            // sector 2 of a clean page
        Assert.Equal(TestVolumes.Pattern(30).AsSpan(0, 512).ToArray(), await page.Read(0, 512)); // sector 0 is fine
        StorageException e = await Assert.ThrowsAsync<StorageException>(() => page.Read(1000, 100));
        Assert.Equal(StorageError.IntegrityError, e.Error);
        Assert.Equal(CheckKind.Guard, e.Failure!.Check);
        Assert.Equal(v.Locate(8).Lba + 2, e.Failure.Lba);
        Assert.Equal(TestVolumes.Pattern(30), await page.ReadDurable()); // the disk copy was never touched
    }

    [Fact]
    public async Task APartialWriteDoesNotFoldCorruptionIntoAFreshTag()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
        IPageGrain page = _grains.Page(v, 9);
        await page.Write(0, TestVolumes.Pattern(31), false);
        await page.InjectBitflip(512 * 8 + 3);                // sector 1, byte 0
        long version = (await page.GetInfo()).Version;
        // A write to the rest of sector 1 would merge with the corrupt byte: it is refused and nothing changes.
        StorageException e = await Assert.ThrowsAsync<StorageException>(() => page.Write(600, new byte[100], false));
        Assert.Equal(StorageError.IntegrityError, e.Error);
        Assert.Equal(version, (await page.GetInfo()).Version);
        Assert.True((await page.GetInfo()).Poisoned);
        FsyncResult f = await _grains.Flusher(v).Fsync(0, v.Pages);
        Assert.False(f.Durable);
        Assert.Contains("poisoned", f.Error);
        // A whole-page write replaces it all and is durable again.
        await page.Write(0, TestVolumes.Pattern(32), false);
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable);
        Assert.Equal(TestVolumes.Pattern(32), await page.ReadDurable());
    }

    [Fact]
    public async Task PageBitflipGoesToDiskSilentlyWhenTagsAreComputedAtWriteback()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable, c => c with { TagsAtCopyIn = false });
        IPageGrain page = _grains.Page(v, 0);
        byte[] good = TestVolumes.Pattern(3);
        await page.Write(0, good, false);
        await page.InjectBitflip(99);

        Assert.True((await _grains.Flusher(v).Fsync(0, 1)).Durable); // no check fired...
        WritebackStats stats = await _grains.Flusher(v).GetStats();
        Assert.Equal(0, stats.RejectedGuard);
        byte[] onDisk = await _grains.OnDisk(v, 0);                   // ...and the disk holds corrupt data
        Assert.NotEqual(good, onDisk);
        good[99 / 8] ^= 1 << (99 % 8);
        Assert.Equal(good, onDisk);
        Assert.True(Scrubber.Scrub((await _grains.Disk(v, 0).GetStats()).ImagePath).Clean); // with valid PI
    }

    [Fact]
    public async Task TransitBitflipIsRejectedRetriedAndEndsCorrect()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
        byte[] a = TestVolumes.Pattern(4);
        await _grains.Page(v, 5).Write(0, a, false);
        await _grains.Flusher(v).InjectTransitBitflip(5);
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable);
        WritebackStats stats = await _grains.Flusher(v).GetStats();
        Assert.Equal(1, stats.RejectedGuard);
        Assert.Equal(1, stats.Retries);
        Assert.Equal(0, stats.PoisonedPages);       // the page's memory was fine: retried, not poisoned
        WritebackEvents events = await _grains.Flusher(v).GetEvents();
        Assert.Equal(new[] { 5 }, events.RejectedPages);
        Assert.Equal(FaultKind.TransitBitflip, Assert.Single(events.Applied).Kind);
        Assert.Equal(5, events.Applied[0].Page);
        Assert.Equal(a, await _grains.OnDisk(v, 5));
        Assert.Equal(a, await _grains.Page(v, 5).ReadDurable());
    }

    [Fact]
    public async Task MediaBitrotIsReportedOnReadAndByScrub()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
        await _grains.Page(v, 2).Write(0, TestVolumes.Pattern(5), false);
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable);
        var (d, lba) = v.Locate(2);
        IDiskGrain disk = _grains.Disk(v, d);
        await disk.InjectFault(FaultKind.MediaBitrot, lba + 3, 1);
        StorageException e = await ReadFails(disk, lba, 8);
        Assert.Equal(StorageError.IntegrityError, e.Error);
        Assert.Equal(lba + 3, e.Failure!.Lba);
        Assert.Equal(CheckKind.Guard, e.Failure.Check);
        ScrubReport scrub = Scrubber.Scrub((await disk.GetStats()).ImagePath);
        Assert.Equal([lba + 3], scrub.Errors.Select(x => x.Lba));
        await _grains.RewriteOnDisk(v, 2, 1002);
    }

    [Fact]
    public async Task MisdirectedWriteIsExposedByTheReferenceTag()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
        byte[] old = TestVolumes.Pattern(6), fresh = TestVolumes.Pattern(7);
        await _grains.Page(v, 0).Write(0, old, false);
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable);
        IDiskGrain disk = _grains.Disk(v, 0);
        await disk.InjectFault(FaultKind.MisdirectedWrite, 0, 1);
        await _grains.Page(v, 1).Write(0, TestVolumes.Pattern(12), false); // page 1 is on disk 0 too: not hit
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable);
        await _grains.Page(v, 0).Write(0, fresh, false);
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable); // the disk acknowledged it

        // The command landed on LBAs 8..15 (page 1's place) with page 0's tuples: the reference tag exposes it.
        StorageException e = await ReadFails(disk, 8, 8);
        Assert.Equal(CheckKind.Ref, e.Failure!.Check);
        Assert.Equal(8, e.Failure.Lba);
        Assert.Equal(0u, e.Failure.Actual);
        // Page 0's own place still holds the old data with valid PI: plain DIF cannot see that write was lost;
        // the version in the application tag can.
        Assert.Equal(old, (await disk.Read(0, 8)).Data);
        StorageException lost = await Assert.ThrowsAsync<StorageException>(() => _grains.Page(v, 0).ReadDurable());
        Assert.Equal(CheckKind.Version, lost.Failure!.Check);
        FaultRecord applied = Assert.Single(await disk.GetFaultLog());
        Assert.Equal((FaultKind.MisdirectedWrite, 0L, 8, 8L), (applied.Kind, applied.Lba, applied.Sectors, applied.TargetLba));
        await _grains.RewriteOnDisk(v, 0, 1000);
        await _grains.RewriteOnDisk(v, 1, 1001);
    }

    [Fact]
    public async Task TornWriteFailsTheGuardOfTheTornSector()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
        await _grains.Page(v, 3).Write(0, TestVolumes.Pattern(8), false);
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable);
        var (d, lba) = v.Locate(3);
        IDiskGrain disk = _grains.Disk(v, d);
        await disk.InjectFault(FaultKind.TornWrite, lba, 1);
        await _grains.Page(v, 3).Write(0, TestVolumes.Pattern(9), false);
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable);

        StorageException e = await ReadFails(disk, lba, 8);
        Assert.Equal(CheckKind.Guard, e.Failure!.Check);
        Assert.Equal(lba + 4, e.Failure.Lba);       // four whole sectors landed, the fifth only half
        Assert.Equal(TestVolumes.Pattern(9).AsSpan(0, 2048).ToArray(), (await disk.Read(lba, 4)).Data);
        StorageException viaPage = await Assert.ThrowsAsync<StorageException>(() => _grains.Page(v, 3).ReadDurable());
        Assert.Equal(CheckKind.Guard, viaPage.Failure!.Check);
        await _grains.RewriteOnDisk(v, 3, 1003);
    }

    [Fact]
    public async Task LostWriteIsInvisibleToPlainDif()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable, c => c with { VersionTags = false });
        byte[] old = TestVolumes.Pattern(10);
        await _grains.Page(v, 4).Write(0, old, false);
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable);
        var (d, lba) = v.Locate(4);
        await _grains.Disk(v, d).InjectFault(FaultKind.LostWrite, lba, 1);
        await _grains.Page(v, 4).Write(0, TestVolumes.Pattern(11), false);
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable);
        // Acknowledged, durable by every account, and the medium holds the old data with valid PI.
        Assert.Equal(old, (await _grains.Disk(v, d).Read(lba, 8)).Data);
        Assert.Equal(old, await _grains.Page(v, 4).ReadDurable());
        Assert.True(Scrubber.Scrub((await _grains.Disk(v, d).GetStats()).ImagePath).Clean);
    }

    [Fact]
    public async Task LostWriteIsReportedByTheVersionInTheApplicationTag()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
        IPageGrain page = _grains.Page(v, 6);
        await page.Write(0, TestVolumes.Pattern(13), false);
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable);
        var (d, lba) = v.Locate(6);
        await _grains.Disk(v, 1 - d).InjectFault(FaultKind.LostWrite, -1, 1); // another disk: not this page's
        await _grains.Disk(v, d).InjectFault(FaultKind.LostWrite, lba, 1);
        await page.Write(100, new byte[] { 1, 2, 3 }, false);
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable);
        long durable = (await page.GetInfo()).DurableVersion;

        StorageException e = await Assert.ThrowsAsync<StorageException>(() => page.ReadDurable());
        Assert.Equal(StorageError.IntegrityError, e.Error);
        Assert.Equal(CheckKind.Version, e.Failure!.Check);
        Assert.Equal(lba, e.Failure.Lba);
        Assert.Equal(VolumeConfig.VersionTag(durable), (ushort)e.Failure.Expected);
        Assert.Equal(VolumeConfig.VersionTag(durable - 1), (ushort)e.Failure.Actual);
        Assert.Equal(2, e.Failure.Ascq);            // reported as an application tag check failure
        FaultRecord applied = Assert.Single(await _grains.Disk(v, d).GetFaultLog());
        Assert.Equal((FaultKind.LostWrite, lba), (applied.Kind, applied.Lba));

        // The next activation of the page finds the lost write too, from its persistent durable version, and
        // never serves the old content: reads and partial writes fail; a whole-page write makes the page good.
        await page.Deactivate();
        StorageException reload = await Assert.ThrowsAsync<StorageException>(() => page.Read(0, 8));
        Assert.Equal(CheckKind.Version, reload.Failure!.Check);
        Assert.True((await page.GetInfo()).Poisoned);
        await Assert.ThrowsAsync<StorageException>(() => page.Write(0, new byte[512], false));
        byte[] fresh = TestVolumes.Pattern(14);
        WriteResult w = await page.Write(0, fresh, false);
        Assert.True(w.Version > durable); // a new activation: a new epoch, above every version of the last one
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable);
        Assert.Equal(fresh, await page.ReadDurable());
    }

    [Fact]
    public async Task PageVersionAndDurableVersionSurviveReactivation()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
        IPageGrain page = _grains.Page(v, 7);
        for (int i = 0; i < 3; i++)
        {
            await page.Write(i * 512, TestVolumes.Pattern(20 + i).AsSpan(0, 512).ToArray(), false);
        }
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable);
        PageInfo before = await page.GetInfo();
        Assert.Equal(3, PageVersion.CountOf(before.DurableVersion));   // three writes of this activation's epoch
        Assert.Equal(before.Activation, PageVersion.EpochOf(before.DurableVersion));
        await page.Deactivate();
        PageInfo again = await page.GetInfo();
        Assert.Equal((before.Version, before.Version), (again.Version, again.DurableVersion)); // the disk held it
        Assert.True(again.Activation > before.Activation);                 // a new epoch from the disk
        long next = (await page.Write(0, new byte[8], false)).Version;
        Assert.Equal(PageVersion.First(again.Activation) + 1, next);        // above every version of the last activation
        Assert.True(next > before.Version);
    }
}

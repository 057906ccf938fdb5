using OrleansDif.Grains;

namespace OrleansDif.Grains.Tests;

[Collection(ClusterCollection.Name)]
public class StablePageTests(ClusterFixture fixture)
{
    private readonly IGrainFactory _grains = fixture.Grains;

    [Fact]
    public async Task WriteReadRoundTripAcrossSilos()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
        // Find a page whose activation is on another silo than its disk.
        int page = -1;
        string pageSilo = "", diskSilo = "";
        for (int p = 0; p < v.Pages && page < 0; p++)
        {
            pageSilo = (await _grains.Page(v, p).GetInfo()).Silo;
            diskSilo = (await _grains.Disk(v, v.Locate(p).Disk).GetStats()).Silo;
            if (pageSilo != diskSilo)
            {
                page = p;
            }
        }
        Assert.True(page >= 0, "every page landed on its disk's silo");
        Assert.NotEqual(pageSilo, diskSilo);

        byte[] a = TestVolumes.Pattern(1);
        WriteResult w = await _grains.Page(v, page).Write(0, a, wait: false);
        Assert.Equal(WriteStatus.Ok, w.Status);
        byte[] part = TestVolumes.Pattern(2, 100);
        WriteResult w2 = await _grains.Page(v, page).Write(1000, part, wait: false);
        Assert.Equal(w.Version + 1, w2.Version);
        part.CopyTo(a, 1000);
        Assert.Equal(a, await _grains.Page(v, page).Read(0, 4096));
        Assert.Equal(part, await _grains.Page(v, page).Read(1000, 100));

        FsyncResult f = await _grains.Flusher(v).Fsync(0, v.Pages);
        Assert.True(f.Durable);
        Assert.Equal(1, f.Pages);
        Assert.Equal(a, await _grains.OnDisk(v, page));
        PageInfo info = await _grains.Page(v, page).GetInfo();
        Assert.Equal(PageState.Clean, info.State);
        Assert.Equal(w2.Version, info.DurableVersion);
        DiskStats disk = await _grains.Disk(v, v.Locate(page).Disk).GetStats();
        Assert.Equal(8, disk.SectorsWritten);
    }

    [Fact]
    public async Task WithADirtyLogEachDirtyPeriodIsDurableBeforeItsFirstWriteIsAcknowledged()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable, c => c with { DirtyLog = true });
        IPageGrain page = _grains.Page(v, 5);
        long first = (await page.Write(0, TestVolumes.Pattern(20), false)).Version;
        long second = (await page.Write(8, TestVolumes.Pattern(21, 8), false)).Version;
        // Acknowledged, so on stable storage: the file any silo (or the next boot) opens says where the period began.
        using (DirtyLog log = DirtyLog.Open(DirtyLogs.PathOf(fixture.DataDirectory, v.Id), v.Pages))
        {
            Assert.Equal(first, log.Read(5));
            Assert.Equal(0, log.Read(6));
        }
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable);
        // The writeback began after both writes: the next write opens a new period, recorded before it returns.
        long third = (await page.Write(0, TestVolumes.Pattern(22), false)).Version;
        Assert.True(third > second);
        using (DirtyLog log = DirtyLog.Open(DirtyLogs.PathOf(fixture.DataDirectory, v.Id), v.Pages))
        {
            Assert.Equal(third, log.Read(5));
        }
        // A volume without one keeps no log at all.
        VolumeConfig plain = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
        Assert.Equal(WriteStatus.Ok, (await _grains.Page(plain, 5).Write(0, TestVolumes.Pattern(23), false)).Status);
        Assert.False(File.Exists(DirtyLogs.PathOf(fixture.DataDirectory, plain.Id)));
    }

    [Fact]
    public async Task StableWriteDuringWritebackIsRefusedOrHeld()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
        IPageGrain page = _grains.Page(v, 3);
        byte[] a = TestVolumes.Pattern(10), b = TestVolumes.Pattern(11), c = TestVolumes.Pattern(12);
        long v1 = (await page.Write(0, a, false)).Version;

        StepHooks.Gate begun = StepHooks.Arm(v.Id, StepHooks.WritebackBegun);
        Task<FsyncResult> fsync = _grains.Flusher(v).Fsync(0, v.Pages);
        await begun.Reached.Within();
        Assert.Equal(PageState.Writeback, (await page.GetInfo()).State);

        WriteResult refused = await page.Write(0, b, wait: false);
        Assert.Equal(WriteStatus.UnderWriteback, refused.Status);
        Assert.Equal(a, await page.Read(0, 4096));

        StepHooks.Gate held = StepHooks.Arm(v.Id, StepHooks.WriteHeld, autoRelease: true);
        Task<WriteResult> waiting = page.Write(0, c, wait: true);
        await held.Reached.Within();
        PageInfo during = await page.GetInfo();
        Assert.Equal(1, during.HeldWriters);
        Assert.False(waiting.IsCompleted);
        Assert.Equal(a, await page.Read(0, 4096));

        begun.Release();
        Assert.True((await fsync.Within()).Durable);
        WriteResult applied = await waiting.Within();
        Assert.Equal(WriteStatus.Ok, applied.Status);
        Assert.Equal(v1 + 1, applied.Version);
        Assert.True(applied.StallMs > 0);
        Assert.Equal(c, await page.Read(0, 4096));
        Assert.Equal(a, await _grains.OnDisk(v, 3)); // the disk holds what was under writeback
        PageInfo after = await page.GetInfo();
        Assert.Equal(PageState.Dirty, after.State);
        Assert.Equal(v1, after.DurableVersion);
        Assert.True((await _grains.Flusher(v).Fsync(3, 1)).Durable);
        Assert.Equal(c, await _grains.OnDisk(v, 3));
    }

    [Fact]
    public async Task StoreThroughRevokedMappingFaultsAndWaits()
    {
        // As Linux maps a page: writable from the first store until writeback revokes it.
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable, c => c with { StoreTags = false });
        IPageGrain page = _grains.Page(v, 5);
        long map = await page.Map(writable: true);
        byte[] a = TestVolumes.Pattern(20);
        WriteResult first = await page.Store(map, 0, a, wait: false);
        Assert.Equal(WriteStatus.Ok, first.Status);
        Assert.False(first.Faulted);
        Assert.Equal(1, (await page.GetInfo()).WritableMappings);

        StepHooks.Gate begun = StepHooks.Arm(v.Id, StepHooks.WritebackBegun);
        Task<FsyncResult> fsync = _grains.Flusher(v).Fsync(0, v.Pages);
        await begun.Reached.Within();
        PageInfo during = await page.GetInfo();
        Assert.Equal(0, during.WritableMappings);
        Assert.Equal(1, during.RevokedMappings);

        WriteResult refused = await page.Store(map, 0, [1, 2, 3], wait: false);
        Assert.Equal(WriteStatus.UnderWriteback, refused.Status);
        Assert.True(refused.Faulted);

        StepHooks.Gate held = StepHooks.Arm(v.Id, StepHooks.WriteHeld, autoRelease: true);
        Task<WriteResult> store = page.Store(map, 100, [9, 9, 9], wait: true);
        await held.Reached.Within();
        Assert.False(store.IsCompleted);
        Assert.Equal(a, await page.Read(0, 4096));

        begun.Release();
        Assert.True((await fsync.Within()).Durable);
        WriteResult done = await store.Within();
        Assert.Equal(WriteStatus.Ok, done.Status);
        Assert.True(done.Faulted);
        PageInfo after = await page.GetInfo();
        Assert.Equal(1, after.WritableMappings);
        Assert.Equal(0, after.RevokedMappings);
        Assert.Equal(PageState.Dirty, after.State);
        Assert.Equal(0, after.ValidTagSectors); // the fault cleared the cached tags
        Assert.Equal(a, await _grains.OnDisk(v, 5));
        a[100] = a[101] = a[102] = 9;
        Assert.Equal(a, await page.Read(0, 4096));
    }

    [Fact]
    public async Task WithStoreTagsAStoreLeavesThePageTaggedAndWriteProtectedAndWritebackReusesTheTags()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
        IPageGrain mapped = _grains.Page(v, 1);
        long map = await mapped.Map(true);
        WriteResult first = await mapped.Store(map, 0, TestVolumes.Pattern(32), false);
        Assert.False(first.Faulted);
        PageInfo info = await mapped.GetInfo();
        Assert.Equal(8, info.ValidTagSectors);  // tagged when the store ended
        Assert.Equal(0, info.WritableMappings); // and write-protected again
        Assert.Equal(1, info.RevokedMappings);
        Assert.True((await mapped.Store(map, 0, TestVolumes.Pattern(33), false)).Faulted); // the next store faults

        Assert.True((await _grains.Flusher(v).Fsync(1, 1)).Durable);
        WritebackStats stats = await _grains.Flusher(v).GetStats();
        Assert.Equal(8, stats.CrcReused);
        Assert.Equal(0, stats.CrcComputed);
        Assert.Equal(TestVolumes.Pattern(33), await _grains.OnDisk(v, 1));
    }

    [Fact]
    public async Task CachedTagsAreReusedForWritesAndRecomputedAfterStores()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable, c => c with { StoreTags = false });
        await _grains.Page(v, 0).Write(0, TestVolumes.Pattern(30), false);
        IPageGrain mapped = _grains.Page(v, 1);
        long map = await mapped.Map(true);
        await mapped.Store(map, 0, TestVolumes.Pattern(31), false);
        Assert.Equal(8, (await _grains.Page(v, 0).GetInfo()).ValidTagSectors);
        Assert.Equal(0, (await mapped.GetInfo()).ValidTagSectors);

        Assert.True((await _grains.Flusher(v).Fsync(0, 2)).Durable);
        WritebackStats stats = await _grains.Flusher(v).GetStats();
        Assert.Equal(8, stats.CrcReused);     // page 0: all eight sectors' tags from copy-in
        Assert.Equal(8, stats.CrcComputed);   // page 1: stored through a mapping, recomputed
        Assert.Equal(2, stats.Pages);
        Assert.Equal(1, stats.Commands);      // pages 0 and 1 are contiguous on disk 0: one command
        Assert.Equal(TestVolumes.Pattern(30), await _grains.OnDisk(v, 0));
        Assert.Equal(TestVolumes.Pattern(31), await _grains.OnDisk(v, 1));
    }

    [Fact]
    public async Task UnstableWriteBetweenTagsAndTransferIsRejectedThenRetried()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Unstable);
        IPageGrain page = _grains.Page(v, 2);
        byte[] a = TestVolumes.Pattern(40), b = TestVolumes.Pattern(41);
        await page.Write(0, a, false);

        StepHooks.Gate tagsDone = StepHooks.Arm(v.Id, StepHooks.BeforeTransfer);
        Task<FsyncResult> fsync = _grains.Flusher(v).Fsync(0, v.Pages);
        await tagsDone.Reached.Within();
        WriteResult during = await page.Write(0, b, wait: false);
        Assert.Equal(WriteStatus.Ok, during.Status); // unstable: nothing stops the writer
        tagsDone.Release();

        Assert.True((await fsync.Within()).Durable);
        WritebackStats stats = await _grains.Flusher(v).GetStats();
        Assert.True(stats.RejectedGuard >= 1);
        Assert.True(stats.Retries >= 1);
        DiskStats disk = await _grains.Disk(v, v.Locate(2).Disk).GetStats();
        Assert.True(disk.RejectedGuard >= 1);
        Assert.Equal(b, await _grains.OnDisk(v, 2));
        Assert.Equal(PageState.Clean, (await page.GetInfo()).State);
    }

    [Fact]
    public async Task BounceWritesOnDuringWritebackAndDiskHoldsTheSnapshot()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Bounce);
        IPageGrain page = _grains.Page(v, 7);
        byte[] a = TestVolumes.Pattern(50), b = TestVolumes.Pattern(51);
        await page.Write(0, a, false);

        StepHooks.Gate begun = StepHooks.Arm(v.Id, StepHooks.WritebackBegun);
        Task<FsyncResult> fsync = _grains.Flusher(v).Fsync(0, v.Pages);
        await begun.Reached.Within();
        WriteResult during = await page.Write(0, b, wait: false);
        Assert.Equal(WriteStatus.Ok, during.Status);
        Assert.Equal(0, during.StallMs);
        begun.Release();

        Assert.True((await fsync.Within()).Durable);
        Assert.Equal(a, await _grains.OnDisk(v, 7));
        PageInfo info = await page.GetInfo();
        Assert.Equal(PageState.Dirty, info.State);
        Assert.Equal(b, await page.Read(0, 4096));
        WritebackStats stats = await _grains.Flusher(v).GetStats();
        Assert.Equal(1, stats.BounceCopies);
        Assert.Equal(0, stats.RejectedGuard);
        Assert.True((await _grains.Flusher(v).Fsync(7, 1)).Durable);
        Assert.Equal(b, await _grains.OnDisk(v, 7));
    }

    [Fact]
    public async Task DirtyPageSurvivesDeactivation()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
        IPageGrain page = _grains.Page(v, 9);
        byte[] a = TestVolumes.Pattern(60);
        await page.Write(0, a, false);
        Assert.Equal(PageState.Dirty, (await page.GetInfo()).State);
        await page.Deactivate();
        Assert.Equal(a, await _grains.OnDisk(v, 9));
        // The next call activates the page afresh, loaded from its disk.
        Assert.Equal(a, await page.Read(0, 4096));
        Assert.Equal(PageState.Clean, (await page.GetInfo()).State);
    }

    [Fact]
    public async Task ExpiredLeaseReturnsPageToDirtyAndItIsWrittenAgain()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable, c => c with { LeaseMs = 200 });
        IPageGrain page = _grains.Page(v, 4);
        byte[] a = TestVolumes.Pattern(70);
        await page.Write(0, a, false);

        StepHooks.Gate begun = StepHooks.Arm(v.Id, StepHooks.WritebackBegun);
        StepHooks.Gate expired = StepHooks.Arm(v.Id, StepHooks.LeaseExpired, autoRelease: true);
        Task<FsyncResult> fsync = _grains.Flusher(v).Fsync(0, v.Pages);
        await begun.Reached.Within();
        await expired.Reached.Within();          // the writeback is stuck past its lease
        Assert.Equal(PageState.Dirty, (await page.GetInfo()).State);
        Assert.Equal(EndStatus.StaleWriteback, await page.EndWriteback(Guid.NewGuid(), true));

        begun.Release();                          // the stuck writeback finally ends: with a stale id
        Assert.True((await fsync.Within()).Durable);
        WritebackStats stats = await _grains.Flusher(v).GetStats();
        // The stuck command landed (nothing newer was on the disk: the fence let it) and was refused to end; the
        // version it carried is what the page holds, so that command made it durable.
        Assert.True(stats.Commands >= 1);
        Assert.Equal(1, stats.ExpiredWritebacks);
        Assert.Equal(a, await _grains.OnDisk(v, 4));
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable);
    }

    [Fact]
    public async Task BackgroundWritebackAfterDirtyAgeAndThrottling()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable,
            c => c with { DirtyAgeMs = 50, DirtyThreshold = 4 });
        var versions = new long[24];
        await Task.WhenAll(Enumerable.Range(0, 24).Select(async p =>
            versions[p] = (await _grains.Page(v, p).Write(0, TestVolumes.Pattern(100 + p), false)).Version));
        // No fsync: the flusher writes pages back by itself once they are older than the dirty age.
        for (int p = 0; p < 24; p++)
        {
            Assert.True(await _grains.Page(v, p).WaitDurable(versions[p], TimeSpan.FromSeconds(30)));
            Assert.Equal(TestVolumes.Pattern(100 + p), await _grains.OnDisk(v, p));
        }
        WritebackStats stats = await _grains.Flusher(v).GetStats();
        Assert.True(stats.Throttled > 0);
        Assert.Equal(24, stats.Pages);
    }

    [Fact]
    public async Task FsyncBatchesContiguousPagesIntoOneCommandPerDisk()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
        // Pages 0..15 are one stripe unit on disk 0, pages 16..31 one on disk 1.
        await Task.WhenAll(Enumerable.Range(0, 32).Select(p => _grains.Page(v, p).Write(0, TestVolumes.Pattern(200 + p), false)));
        FsyncResult f = await _grains.Flusher(v).Fsync(0, v.Pages);
        Assert.True(f.Durable);
        Assert.Equal(32, f.Pages);
        WritebackStats stats = await _grains.Flusher(v).GetStats();
        Assert.Equal(2, stats.Commands);
        Assert.Equal(32, stats.Pages);
        Assert.Equal(16 * 8, (await _grains.Disk(v, 0).GetStats()).SectorsWritten);
        Assert.Equal(16 * 8, (await _grains.Disk(v, 1).GetStats()).SectorsWritten);
        for (int p = 0; p < 32; p += 5)
        {
            Assert.Equal(TestVolumes.Pattern(200 + p), await _grains.OnDisk(v, p));
        }
    }
}

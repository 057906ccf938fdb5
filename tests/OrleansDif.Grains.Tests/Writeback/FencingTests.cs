using OrleansDif.Grains;

namespace OrleansDif.Grains.Tests;

/// <summary>
/// Safety that does not rest on timing: a writeback whose lease expired may still land, and it must not undo a
/// newer one; a page never changes a buffer an expired writeback may still send; one writer per disk.
/// </summary>
[Collection(ClusterCollection.Name)]
public class FencingTests(ClusterFixture fixture)
{
    private readonly IGrainFactory _grains = fixture.Grains;

    [Fact]
    public async Task AWritebackWhoseLeaseExpiredLandingAfterANewerSyncedOneIsRefusedAsStale()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable, c => c with { LeaseMs = 200 });
        IPageGrain page = _grains.Page(v, 2);
        byte[] a = TestVolumes.Pattern(31), b = TestVolumes.Pattern(32);
        await page.Write(0, a, false);

        // The writeback of A stops before its command; its lease expires; B is written and made durable by the
        // page's own hand-over (a second writer of the page's content, newer, through the same flusher).
        StepHooks.Gate begun = StepHooks.Arm(v.Id, StepHooks.WritebackBegun);
        StepHooks.Gate expired = StepHooks.Arm(v.Id, StepHooks.LeaseExpired, autoRelease: true);
        Task<FsyncResult> stuck = _grains.Flusher(v).Fsync(2, 1);
        await begun.Reached.Within();
        await expired.Reached.Within();
        WriteResult wb = await page.Write(0, b, false);
        Assert.Equal(WriteStatus.Ok, wb.Status);
        PageInfo info = await page.GetInfo();
        var snapshot = new WritebackSnapshot(BeginStatus.Started, Guid.Empty, wb.Version, b, new ulong[v.SectorsPerPage], 0, true);
        Assert.True(await _grains.Flusher(v).Evict(2, snapshot));
        Assert.Equal(b, await _grains.OnDisk(v, 2));
        long staleBefore = (await _grains.Flusher(v).GetStats()).StaleCommands;

        begun.Release();                          // A's command finally goes to the disk: older than what it holds
        await stuck.Within();
        WritebackStats stats = await _grains.Flusher(v).GetStats();
        Assert.Equal(staleBefore + 1, stats.StaleCommands);
        Assert.Equal(0, stats.RejectedGuard);
        Assert.Equal(b, await _grains.OnDisk(v, 2)); // the disk still holds the newer
        DiskStats disk = await _grains.Disk(v, v.Locate(2).Disk).GetStats();
        Assert.True(disk.StaleRefused >= 1);
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable);
        Assert.Equal(b, await _grains.OnDisk(v, 2));
        Assert.Equal(info.Version, (await page.GetInfo()).Version);
    }

    [Fact]
    public async Task ALeaseThatExpiresWhileItsWritebackIsStillSendingCostsARetryNotAGuardRejection()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable, c => c with { LeaseMs = 200 });
        IPageGrain page = _grains.Page(v, 5);
        byte[] a = TestVolumes.Pattern(41);
        await page.Write(0, a, false);

        // Writeback has the page (and, in one silo, its very buffer) and has not built its command yet; the lease
        // expires and the page takes a write: into a private copy, never into the buffer writeback still reads.
        StepHooks.Gate begun = StepHooks.Arm(v.Id, StepHooks.WritebackBegun);
        StepHooks.Gate expired = StepHooks.Arm(v.Id, StepHooks.LeaseExpired, autoRelease: true);
        Task<FsyncResult> fsync = _grains.Flusher(v).Fsync(0, v.Pages);
        await begun.Reached.Within();
        await expired.Reached.Within();
        byte[] patch = TestVolumes.Pattern(42, 700);
        Assert.Equal(WriteStatus.Ok, (await page.Write(100, patch, false)).Status);
        begun.Release();
        await fsync.Within();

        WritebackStats stats = await _grains.Flusher(v).GetStats();
        Assert.Equal(0, stats.RejectedGuard);     // the command carried A whole, with A's tags
        byte[] onDisk = await _grains.OnDisk(v, 5);
        byte[] expected = (byte[])a.Clone();
        patch.CopyTo(expected, 100);
        Assert.True(onDisk.AsSpan().SequenceEqual(a) || onDisk.AsSpan().SequenceEqual(expected), "the disk holds a page that is neither A nor A+patch");
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable);
        Assert.Equal(expected, await _grains.OnDisk(v, 5));
        Assert.Equal(expected, await page.Read(0, 4096));
    }

    [Fact]
    public async Task APageDeactivatedDuringWritebackHandsItsContentToTheFlusherAndNothingIsLost()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
        IPageGrain page = _grains.Page(v, 9);
        byte[] a = TestVolumes.Pattern(51);
        WriteResult w = await page.Write(0, a, false);
        long disksWritersBefore = (await _grains.Disk(v, v.Locate(9).Disk).GetStats()).Commands;

        StepHooks.Gate begun = StepHooks.Arm(v.Id, StepHooks.WritebackBegun);
        StepHooks.Gate evicted = StepHooks.Arm(v.Id, StepHooks.PageEvicted, autoRelease: true);
        Task<FsyncResult> fsync = _grains.Flusher(v).Fsync(0, v.Pages);
        await begun.Reached.Within();
        await page.Deactivate();                  // under writeback: the activation goes as it is
        await evicted.Reached.Within();           // its deactivation had the flusher write it and flush the disk
        begun.Release();                          // the writeback under way goes on; its end meets a new activation

        FsyncResult f = await fsync.Within();
        Assert.True(f.Durable, f.Error);          // nothing lost, and no loss reported for a page whose data is there
        Assert.Equal(a, await _grains.OnDisk(v, 9));
        PageInfo info = await page.GetInfo();
        Assert.NotEqual(w.Activation, info.Activation);
        Assert.Equal(w.Version, info.LoadedVersion);
        Assert.False(info.LostWrites);
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable);
        // Every command the disk took came from the flusher (the only caller of WritePages): the hand-over and,
        // fenced, the writeback under way.
        DiskStats disk = await _grains.Disk(v, v.Locate(9).Disk).GetStats();
        Assert.InRange(disk.Commands - disksWritersBefore, 1, 2);
    }

    [Fact]
    public async Task AGarbageIntentFileIsReportedNamingThePageAndNeverBricksIt()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
        IPageGrain page = _grains.Page(v, 11);
        byte[] a = TestVolumes.Pattern(61);
        await page.Write(0, a, false);
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable);
        string file = Path.Combine(fixture.DataDirectory, "state", "intent", "difpage", v.Id, "11.json");
        Assert.True(File.Exists(file));
        StepHooks.Gate gone = StepHooks.Arm(v.Id, StepHooks.PageDeactivated, autoRelease: true);
        await page.Deactivate();                  // clean and durable: its deactivation clears the intent
        await gone.Reached.Within();
        File.WriteAllText(file, "{\"ETag\":1,\"Sta");   // torn while no activation holds it

        PageInfo info = await page.GetInfo();     // the next activation reads it: reported, not bricked
        Assert.True(info.LostWrites);
        FsyncResult f = await _grains.Flusher(v).Fsync(0, v.Pages);
        Assert.False(f.Durable);                  // nobody can vouch for what the last activation held: reported
        Assert.Contains("pages 11", f.Error);
        Assert.Equal([11], f.LostPages!);
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable); // once
        Assert.Equal(a, await page.Read(0, 4096)); // the data that was synced is there
        Assert.True(File.Exists(file + ".corrupt"));
    }
}

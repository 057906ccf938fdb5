namespace OrleansDif.Grains.Tests;

/// <summary>Mirrored volumes: a failed check on one copy is served from a good one and repaired; only every copy bad is an error.</summary>
[Collection(ClusterCollection.Name)]
public class MirrorTests(ClusterFixture fixture)
{
    private readonly IGrainFactory _grains = fixture.Grains;

    private Task<VolumeConfig> Mirrored(int mirrors = 2) =>
        TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable, c => c with { Mirrors = mirrors, StripePages = 4 });

    /// <summary>A page written and made durable on every copy: its disk, first LBA and content.</summary>
    private async Task<(IDiskGrain Disk, int DiskIndex, long Lba, byte[] Data)> DurablePage(VolumeConfig v, int page, int seed)
    {
        byte[] data = TestVolumes.Pattern(seed);
        await _grains.Page(v, page).Write(0, data, false);
        FsyncResult f = await _grains.Flusher(v).Fsync(0, v.Pages);
        Assert.True(f.Durable, f.Error);
        var (disk, lba) = v.Locate(page);
        return (_grains.Disk(v, disk), disk, lba, data);
    }

    private IDiskGrain Copy(VolumeConfig v, int disk, int copy) => GrainKeys.DiskCopy(_grains, v.Id, disk, copy);

    [Fact]
    public async Task EachCopyIsOnAnotherSiloThanItsDisk()
    {
        VolumeConfig v = await Mirrored(3);
        for (int d = 0; d < v.Disks; d++)
        {
            string[] silos = await Task.WhenAll(Enumerable.Range(0, 3).Select(async c => (await Copy(v, d, c).GetStats()).Silo));
            Assert.Equal(3, silos.Distinct().Count());
            string[] images = await Task.WhenAll(Enumerable.Range(0, 3).Select(async c => (await Copy(v, d, c).GetStats()).ImagePath));
            Assert.Equal(3, images.Distinct().Count());
        }
    }

    [Fact]
    public async Task RotOnTheDiskIsServedFromTheCopyAndRepaired()
    {
        VolumeConfig v = await Mirrored();
        var (disk, _, lba, data) = await DurablePage(v, 1, 11);
        await disk.InjectFault(FaultKind.MediaBitrot, lba + 1, 1);

        Assert.Equal(data, await _grains.Page(v, 1).ReadDurable());   // a page read: served from the copy
        Assert.Equal([new RepairRecord(lba, 0, CheckKind.Guard)], await disk.GetRepairLog());
        Assert.Equal(data, (await disk.Read(lba, v.SectorsPerPage)).Data); // rewritten: the disk's own slot is good again
        Assert.Single(await disk.GetRepairLog());

        await disk.InjectFault(FaultKind.MediaBitrot, lba + 2, 1);
        Assert.Equal(data, (await disk.Read(lba, v.SectorsPerPage)).Data); // a sector read repairs too
        Assert.Equal(2, (await disk.GetRepairLog()).Length);
        DiskStats stats = await disk.GetStats();
        Assert.Equal(2, stats.Repaired);
        Assert.Equal(0, stats.Unrepairable);
    }

    [Fact]
    public async Task RotOnACopyIsFoundByAScrubAndRepaired()
    {
        VolumeConfig v = await Mirrored();
        var (disk, d, lba, data) = await DurablePage(v, 5, 12);
        await Copy(v, d, 1).InjectFault(FaultKind.MediaBitrot, lba + 3, 1);
        Assert.NotNull((await Copy(v, d, 1).LoadPage(lba, claim: false)).Failure);

        ScrubResult scrub = await disk.Scrub();
        Assert.Equal(0, scrub.Unrepairable);
        Assert.Equal(v.SectorsPerDisk / v.SectorsPerPage, scrub.Slots);
        // Mended once, by the scrub or by the background comparison the disk began when it was formatted.
        Assert.Equal([new RepairRecord(lba, 1, CheckKind.Guard)], await disk.GetRepairLog());
        Assert.Equal(1, (await disk.GetStats()).Repaired);
        DiskPageRead copy = await Copy(v, d, 1).LoadPage(lba, claim: false);
        Assert.Null(copy.Failure);
        Assert.Equal(data, copy.Data);
        Assert.Equal(0, (await disk.Scrub()).Repaired); // nothing left to mend
    }

    [Fact]
    public async Task AWriteTheDiskLostIsServedFromTheCopy()
    {
        VolumeConfig v = await Mirrored();
        var (disk, _, lba, _) = await DurablePage(v, 2, 13);
        await disk.InjectFault(FaultKind.LostWrite, lba, 1);          // the disk acknowledges the next command and drops it
        var (_, _, _, newer) = await DurablePage(v, 2, 14);

        Assert.Equal(newer, await _grains.Page(v, 2).ReadDurable());  // the old content's version tags gave it away
        Assert.Contains(new RepairRecord(lba, 0, CheckKind.Version), await disk.GetRepairLog());
    }

    [Fact]
    public async Task RotOnEveryCopyIsAnIntegrityError()
    {
        VolumeConfig v = await Mirrored();
        var (disk, d, lba, _) = await DurablePage(v, 3, 15);
        await disk.InjectFault(FaultKind.MediaBitrot, lba + 1, 1);
        await Copy(v, d, 1).InjectFault(FaultKind.MediaBitrot, lba + 1, 1);

        StorageException e = await Assert.ThrowsAsync<StorageException>(() => _grains.Page(v, 3).ReadDurable());
        Assert.Equal(StorageError.IntegrityError, e.Error);   // never served as good
        Assert.Equal(CheckKind.Guard, e.Failure!.Check);
        ScrubResult scrub = await disk.Scrub();
        Assert.Equal(1, scrub.Unrepairable);
        Assert.Equal(0, scrub.Repaired);
        Assert.Equal(1, (await disk.Scrub()).Unrepairable);
        Assert.Equal(1, (await disk.GetStats()).Unrepairable); // counted once, however often it is met
        Assert.Empty(await disk.GetRepairLog());

        // The page written whole again: both copies take it, and the slot is good everywhere.
        var (_, _, _, again) = await DurablePage(v, 3, 17);
        Assert.Equal(again, await _grains.Page(v, 3).ReadDurable());
        Assert.Equal(0, (await disk.Scrub()).Unrepairable);
    }

    [Fact]
    public async Task AMirroredDiskTakesPageCommandsOnly()
    {
        VolumeConfig v = await Mirrored();
        var scheme = new Protection.ProtectionScheme(new Protection.SectorFormat(v.SectorSize), (Protection.PiType)v.PiType) { AppTag = 0xFFFF };
        byte[] data = TestVolumes.Pattern(18, v.SectorSize);
        byte[] pi = new byte[8];
        scheme.Generate(data, pi, 0);
        StorageException e = await Assert.ThrowsAsync<StorageException>(() => _grains.Disk(v, 0).Write(0, data, pi));
        Assert.Equal(StorageError.InvalidConfig, e.Error);
        Assert.Contains("page commands only", e.Message);
        Assert.Equal(0, (await _grains.Disk(v, 0).GetStats()).SectorsWritten);
        StorageException noTags = await Assert.ThrowsAsync<StorageException>(() =>
            TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable, c => c with { Mirrors = 2, VersionTags = false }));
        Assert.Equal(StorageError.InvalidConfig, noTags.Error);
        Assert.Contains("versionTags", noTags.Message);
    }

    [Fact]
    public async Task ScrubOfADiskWithoutMirrorsVerifiesEverySlot()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
        var (disk, _, lba, _) = await DurablePage(v, 0, 16);
        Assert.Equal(0, (await disk.Scrub()).Unrepairable);
        await disk.InjectFault(FaultKind.MediaBitrot, lba, 1);
        ScrubResult scrub = await disk.Scrub();
        Assert.Equal(1, scrub.Unrepairable);
        Assert.Equal(0, scrub.Repaired);
        await _grains.RewriteOnDisk(v, 0, 2000);
    }

    [Fact]
    public async Task CopiesBeyondTheVolumesMirrorsDoNotExistAndACopyIsNotScrubbedAlone()
    {
        VolumeConfig plain = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
        StorageException none = await Assert.ThrowsAsync<StorageException>(() => Copy(plain, 0, 1).GetStats());
        Assert.Equal(StorageError.OutOfRange, none.Error);
        VolumeConfig v = await Mirrored();
        StorageException third = await Assert.ThrowsAsync<StorageException>(() => Copy(v, 0, 2).GetStats());
        Assert.Equal(StorageError.OutOfRange, third.Error);
        StorageException scrub = await Assert.ThrowsAsync<StorageException>(() => Copy(v, 0, 1).Scrub());
        Assert.Equal(StorageError.InvalidConfig, scrub.Error);
    }
}
